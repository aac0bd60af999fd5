"""One tiny model quantized and exported by the real CLIs, copied into each test's own OUT.

The model is an untrained MobileNet V2 0.35 at 32 px (tests/quantize/tiny.py): what is tested
is which files a stage leaves, not accuracy. Two sources differ in their weights, so their
quantized files differ; an export with another ``--license`` differs in every .tflite.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from quantize import files
from tests.quantize import tiny
from tests.train import procs

VARIANTS = "float32,dynamic_int8"   # no calibration: no data needed to quantize


def quantize_args(model: Path, out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "quantize", "--model", str(model), "--out", str(out / "quantize"),
            "--variants", VARIANTS, *extra]


def export_args(out: Path, data: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "export", "run", "--out", str(out), "--data", str(data), *extra]


def cli(*args, hook=None, timeout=600):
    """A real CLI in a subprocess: (exit code, stdout + stderr)."""
    r = procs.run([sys.executable, "-m", *map(str, args)], hook=hook, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def one_error(code: int, output: str, *fragments: str) -> str:
    """Assert a failure told in one 'Error:' line holding ``fragments``, without a traceback."""
    assert code not in (0, None), output
    assert "Traceback" not in output, output
    errors = [ln for ln in output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, output
    for f in fragments:
        assert f in errors[0], output
    return errors[0]


def published(folder: Path, record: str) -> dict[str, str]:
    """{file: sha256} that ``record`` in ``folder`` lists, each checked against the file on disk
    (size and sha256): the folder holds that complete set, or this assertion fails."""
    doc = json.loads((folder / record).read_text())
    entries = list(doc["variants"]) + ([doc["eval_pack"]] if "eval_pack" in doc else [])
    for e in entries:
        path = folder / e["file"]
        assert path.is_file(), f"{path} listed in {record} is missing"
        assert files.sha256(path) == e["sha256"], f"{path} is not the file {record} describes: a mixed set"
        if "size_bytes" in e:
            assert path.stat().st_size == e["size_bytes"]
    return {e["file"]: e["sha256"] for e in entries}


def no_leftovers(*folders: Path) -> None:
    for folder in folders:
        assert not [p.name for p in folder.iterdir() if ".partial" in p.name], list(folder.iterdir())


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """src_a/, src_b/ (model.keras + model.json), data/ (a blob folder) and base/ (src_a
    quantized into base/quantize and exported into base by the CLIs); about 25 s."""
    import numpy as np

    root = tmp_path_factory.mktemp("robustness")
    model = tiny.untrained()
    tiny.write_source(root / "src_a", model)
    rng = np.random.default_rng(1)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
    tiny.write_source(root / "src_b", model)
    data = tiny.blob_folder(root / "data", per_class=12)
    base = root / "base"
    for args in (quantize_args(root / "src_a" / "model.keras", base), export_args(base, data)):
        r = procs.run(args)
        assert r.returncode == 0, r.stdout + r.stderr
    return SimpleNamespace(root=root, data=data, base=base, model_a=root / "src_a" / "model.keras",
                           model_b=root / "src_b" / "model.keras")


@pytest.fixture
def out(built, tmp_path) -> Path:
    """A copy of the base build (quantize/ and the exported set) for one test to break."""
    return Path(shutil.copytree(built.base, tmp_path / "build", symlinks=True))
