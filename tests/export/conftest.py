"""One tiny trained model taken through quantize and export, shared by the slow export tests."""
from types import SimpleNamespace

import pytest

from tests.quantize import tiny


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """train -> quantize (every variant) -> export, on the blob task; about a minute."""
    from export import bundle
    from export.config import ExportConfig
    from quantize import convert
    from quantize.config import QuantizeConfig
    from train import fit

    root = tmp_path_factory.mktemp("pipeline")
    ds = tiny.blob_dataset()
    record = fit.run(tiny.CFG, root, dataset=ds, verbose=0)
    assert record["test_top1"] > 0.9, record["history"]
    summary = convert.run(QuantizeConfig(calibration_size=64), root / "model.keras", root / "quantize",
                          dataset=ds)
    manifest = bundle.run(ExportConfig(), root / "quantize", root, dataset=ds)
    return SimpleNamespace(root=root, ds=ds, record=record, summary=summary, manifest=manifest)
