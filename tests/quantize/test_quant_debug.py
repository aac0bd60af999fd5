"""python -m quantize debug: per-layer int8 error, with the Keras layer names, worst first."""
import json
import math

import pytest
from click.testing import CliRunner

from quantize import convert, debug
from quantize.__main__ import cli
from quantize.config import QuantizeConfig
from tests.quantize import sensitive, tiny

LAYERS = {"conv1", sensitive.WIDE, sensitive.READS_WIDE, "pool", "flatten", "predictions"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant-debug")
    ds = tiny.blob_dataset()
    src = tiny.write_source(root / "src", sensitive.model(ds))
    convert.run(QuantizeConfig(variants=("float32", "int8"), calibration_size=64), src, root / "q",
                dataset=ds)
    record = debug.run(root / "q", root / "quant_debug", dataset=ds)
    return root, record


@pytest.mark.slow
def test_table_has_the_real_layers_worst_first(report):
    root, record = report
    rows = record["layers"]
    names = [r["layer"] for r in rows]
    assert LAYERS <= set(names), names                     # Keras names, not TFLite tensor soup
    # every row, the softmax's included, and the app input's luminance conversion (quantize.app_input)
    assert set(names) <= LAYERS | {"luminance"}, names
    assert [r["op"] for r in rows if r["layer"] == "predictions"].count("SOFTMAX") == 1
    assert len(names) == len(set(r["tensor"] for r in rows))
    keys = [(r["rmse_over_scale"], r["max_abs_error"]) for r in rows]
    assert [k[0] for k in keys] == sorted((k[0] for k in keys), reverse=True)
    for r in rows:
        for k in ("rmse_over_scale", "rmse", "max_abs_error", "mean_error", "scale"):
            assert math.isfinite(r[k]), (r["layer"], k, r[k])
        assert r["scale"] > 0 and r["elements"] > 0
        assert r["max_abs_error"] >= r["rmse"] >= abs(r["mean_error"])
        assert math.isclose(r["rmse_over_scale"], r["rmse"] / r["scale"], rel_tol=1e-9)
    # The layer reading the wide activation with per-tensor weights tops the list, far above
    # rounding (0.29); a well-behaved conv stays near it.
    assert rows[0]["layer"] == sensitive.READS_WIDE and rows[0]["rmse_over_scale"] > 3
    conv1 = next(r for r in rows if r["layer"] == "conv1")
    assert conv1["rmse_over_scale"] < 1
    # Reshape moves int8 values without arithmetic: no error.
    flatten = next(r for r in rows if r["layer"] == "flatten")
    assert flatten["max_abs_error"] < 1e-5
    assert record["images"] == 64 and record["split"] == "calibration"


@pytest.mark.slow
def test_report_files(report):
    root, record = report
    out = root / "quant_debug"
    assert sorted(p.name for p in out.iterdir()) == ["quant_debug.json", "quant_debug.md", "quant_debug.png"]
    assert json.loads((out / "quant_debug.json").read_text()) == record
    md = (out / "quant_debug.md").read_text().splitlines()
    table = [ln for ln in md if ln.startswith("| ") and not ln.startswith("| #")]
    assert [ln.split(" | ")[1] for ln in table] == [r["layer"] for r in record["layers"]]
    assert table[0].startswith(f"| 1 | {sensitive.READS_WIDE} | CONV_2D | ")
    png = (out / "quant_debug.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert record["int8"]["sha256"] and record["source"]["sha256"]
    assert record["tensorflow"]


def test_layer_name_from_fused_tensor_names():
    t = ("mobilenet_v1_0.5_1/conv_dw_1_relu_1/Relu6;mobilenet_v1_0.5_1/conv_dw_1_bn_1/batchnorm/add_1;"
         "mobilenet_v1_0.5_1/conv_dw_1_1/depthwise")
    params = {"conv_dw_1": 288, "conv_dw_1_bn": 128, "conv_dw_1_relu": 0}
    assert debug.layer_name(t, params) == "conv_dw_1"              # the one holding the weights
    assert debug.layer_name(t) == "conv_dw_1_relu"                 # without the model: the first
    assert debug.layer_name("StatefulPartitionedCall_1:0", params) == "StatefulPartitionedCall_1:0"
    # the model's output (the softmax's) is named after the signature: it is the output layer's
    assert debug.layer_name("StatefulPartitionedCall_1:0", params, "predictions") == "predictions"
    assert debug.layer_name("model/conv_dw_1_1/depthwise", params, "predictions") == "conv_dw_1"
    assert debug.layer_name("functional_1/block_1_pad_1/Pad", {"block_1_pad": 0}) == "block_1_pad"


def test_debug_without_a_build_says_to_export_first(tmp_path):
    r = CliRunner().invoke(cli, ["debug", "--quantized", str(tmp_path / "q"), "--out", str(tmp_path / "d")])
    assert r.exit_code == 1
    assert f"'{tmp_path / 'q' / 'quantize.json'}' does not exist" in r.output
    assert "build the int8 model first (make export" in r.output
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("text, says", [
    ("", "it is empty"),
    ('{"variants": [{"name": "int8"', "it is not JSON"),
    ("[]", "it holds a JSON list"),
    ('{"variants": "int8"}', "has no list of variants"),
    ('{"variants": [{"name": "int8", "file": "int8.tflite"}], "config": {}}', "has no source model or config"),
])
def test_debug_refuses_a_damaged_quantize_json_in_one_line(tmp_path, text, says):
    q = tmp_path / "q"
    q.mkdir()
    (q / "quantize.json").write_text(text)
    r = CliRunner().invoke(cli, ["debug", "--quantized", str(q), "--out", str(tmp_path / "d")])
    assert r.exit_code == 1, r.output
    assert says in r.output and "build the int8 model first (make export" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_debug_without_int8(tmp_path):
    q = tmp_path / "q"
    q.mkdir()
    (q / "quantize.json").write_text(json.dumps({"variants": [{"name": "float32"}], "config": {}}))
    r = CliRunner().invoke(cli, ["debug", "--quantized", str(q), "--out", str(tmp_path / "d")])
    assert r.exit_code == 1
    assert "lists no int8 variant" in r.output and "VARIANTS=float32,int8" in r.output


@pytest.mark.slow
def test_cli_end_to_end_on_an_image_folder(tmp_path):
    folder = tiny.blob_folder(tmp_path / "imgs", per_class=20)
    src = tiny.write_source(tmp_path / "src", tiny.untrained(), config=tiny.CFG.replace(data=str(folder)))
    r = CliRunner().invoke(cli, ["--model", str(src), "--out", str(tmp_path / "q"), "--variants",
                                 "float32,int8", "--calibration-size", "8"])   # the default command
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["debug", "--quantized", str(tmp_path / "q"), "--out", str(tmp_path / "d"),
                                 "--images", "4"])
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "d" / "quant_debug.json").read_text())
    assert record["images"] == 4
    names = {row["layer"] for row in record["layers"]}
    assert {"Conv1", "expanded_conv_depthwise", "predictions"} <= names, names
    assert not [n for n in names if "StatefulPartitionedCall" in n or ":" in n], names
    assert f"| 1 | {record['layers'][0]['layer']} | " in r.output
    assert "wrote quant_debug.json, quant_debug.md, quant_debug.png in" in r.output
