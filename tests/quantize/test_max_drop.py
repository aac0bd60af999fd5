"""--max-drop: a model that full int8 breaks on purpose is repaired by keeping its sensitive
layers in float32, measured on the validation split; an impossible budget is reported."""
import json

import numpy as np
import pytest

from android_bench.device.evaluate import Classifier, evaluate
from imagedata.preprocess import Preprocessing
from quantize import convert, graph
from quantize.config import ConfigError, QuantizeConfig
from quantize.files import sha256
from tests.quantize import sensitive, tiny

BUDGET = 5.0   # top-1 points


@pytest.fixture(scope="module")
def ds():
    return tiny.blob_dataset()


def val_top1(path, ds):
    """Top-1 on val of a quantize output, fed as quantize.json says its input is (int8: raw pixels)."""
    summary = json.loads((path.parent / "quantize.json").read_text())
    form = next(v["input"] for v in summary["variants"] if v["file"] == path.name)
    clf = Classifier(path.read_bytes(), preprocessing=Preprocessing.from_dict(form["preprocessing"]))
    return evaluate(clf, ds.val.x, ds.val.y, ds.labels).top1


def quantize(tmp, ds, m, **config):
    src = tiny.write_source(tmp / "src", m)
    config = QuantizeConfig(variants=("float32", "int8"), calibration_size=64, **config)
    return convert.run(config, src, tmp / "q", dataset=ds), tmp / "q"


def test_max_drop_is_validated():
    with pytest.raises(ConfigError, match="from 0 to 100, got -1"):
        QuantizeConfig(max_drop=-1)
    with pytest.raises(ConfigError, match="budget for the int8 variant: add int8 to --variants"):
        QuantizeConfig(variants=("float32", "int16x8"), max_drop=1)
    with pytest.raises(ConfigError, match="number of top-1 points"):
        QuantizeConfig(max_drop="lots")
    assert "max_drop" not in QuantizeConfig().to_dict()          # recipes without a budget unchanged
    c = QuantizeConfig(max_drop="0.5")
    assert c.max_drop == 0.5 and QuantizeConfig.from_dict(c.to_dict()) == c


@pytest.mark.slow
def test_budget_repairs_a_model_int8_breaks(tmp_path, ds):
    m = sensitive.model(ds)
    assert sensitive.float_top1(m, ds.val) > 0.95
    # Plain int8, no budget: the wide activation costs far more than the budget.
    plain, plain_dir = quantize(tmp_path / "plain", ds, m)
    float_top1 = val_top1(plain_dir / "float32.tflite", ds)
    assert float_top1 > 0.95
    assert 100 * (float_top1 - val_top1(plain_dir / "int8.tflite", ds)) > BUDGET
    assert "float_layers" not in plain["variants"][1] and "accuracy_budget" not in plain

    summary, out = quantize(tmp_path / "budget", ds, m, max_drop=BUDGET)
    b = summary["accuracy_budget"]
    assert b["split"] == "val" and b["images"] == len(ds.val) and b["max_drop_pts"] == BUDGET
    assert b["met"] is True and b["searched"] is True
    assert b["int8_drop_pts"] > BUDGET >= b["drop_pts"]
    # The record is what the file does: re-measured here, independently.
    assert b["float32_top1"] == float_top1
    assert val_top1(out / "int8.tflite", ds) == b["top1"]
    assert 100 * (float_top1 - b["top1"]) <= BUDGET
    kept = {f["layer"] for f in b["float_layers"]}
    assert sensitive.WIDE in kept, b["steps"]
    assert len(kept) <= 3, kept                           # pruned back, not "everything float"
    # Exactly the deny-listed ops compute in float32; everything else is still int8.
    tensors = {f["tensor"] for f in b["float_layers"]}
    left = graph.float_ops((out / "int8.tflite").read_bytes())
    assert {op.tensor for op in left} == tensors
    assert graph.io_types((out / "int8.tflite").read_bytes()) == (["uint8"], ["uint8"])
    int8 = summary["variants"][1]
    assert int8["name"] == "int8" and int8["float_layers"] == b["float_layers"]
    assert int8["converter"]["float_layers"] == [f["tensor"] for f in b["float_layers"]]
    # Steps: the greedy forward pass, then the pruning; the first one is the worst layer.
    assert b["steps"][0]["layer"] == b["ranking"][0]["layer"]
    assert b["steps"][0]["float_layers"] == 1
    assert any(s["action"] == "back to int8" for s in b["steps"])
    assert sum(s["within_budget"] for s in b["steps"]) >= 1
    # Its cost: size and host latency against plain int8.
    cost = b["cost"]
    assert cost["size_bytes"] == int8["size_bytes"] == (out / "int8.tflite").stat().st_size
    assert cost["int8_size_bytes"] > 0 and cost["size_ratio"] == cost["size_bytes"] / cost["int8_size_bytes"]
    assert cost["size_ratio"] > 1                           # float32 weights of the kept layers
    lat = cost["latency"]
    assert lat["int8_median_ms"] > 0 and lat["median_ms"] > 0 and lat["runtime"] and lat["runtime_version"]
    assert json.loads((out / "quantize.json").read_text()) == summary
    assert summary["config"]["max_drop"] == BUDGET


@pytest.mark.slow
def test_budget_already_met_changes_nothing(tmp_path, ds):
    m = sensitive.model(ds)
    plain, plain_dir = quantize(tmp_path / "plain", ds, m)
    summary, out = quantize(tmp_path / "loose", ds, m, max_drop=99)
    b = summary["accuracy_budget"]
    assert b["met"] is True and b["searched"] is False and b["float_layers"] == []
    assert b["int8_drop_pts"] <= 99 and b["steps"] == [] and b["cost"] is None
    assert sha256(out / "int8.tflite") == sha256(plain_dir / "int8.tflite")   # the plain int8


@pytest.mark.slow
def test_impossible_budget_is_reported_and_the_best_kept(tmp_path, ds):
    # Scores closer than an int8 output step: ties in every image whatever stays float.
    m = sensitive.model(ds, flat_logits=True)
    summary, out = quantize(tmp_path / "q", ds, m, max_drop=0.0)
    b = summary["accuracy_budget"]
    assert b["met"] is False and b["searched"] is True
    assert b["message"].startswith("no deny-list meets the budget of 0.0 pt")
    assert "is kept" in b["message"]
    assert b["drop_pts"] > 0
    forward = [s for s in b["steps"] if s["action"] == "keep float32"]
    assert len(forward) == len(b["ranking"])                # every layer was tried
    assert not any(s["within_budget"] for s in b["steps"])
    best = max([b["int8_top1"]] + [s["top1"] for s in b["steps"]])
    assert b["top1"] == best                                 # the best found...
    assert val_top1(out / "int8.tflite", ds) == b["top1"]    # ...is the one written
    if b["top1"] == b["int8_top1"]:                          # no deny-list did better: full int8 kept
        assert b["float_layers"] == [] and "full int8 itself" in b["message"]
        assert graph.float_ops((out / "int8.tflite").read_bytes()) == []
    else:
        assert len(b["float_layers"]) == min(s["float_layers"] for s in b["steps"] if s["top1"] == best)
