"""Every variant from a tiny MobileNetV2, checked in the flatbuffer itself, not only the interpreter."""
import json

import numpy as np
import pytest

from quantize import convert
from quantize.config import QuantizeConfig
from tests.quantize import tiny

WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def read_flatbuffer(path):
    from tensorflow.lite.python import schema_py_generated as fb
    return fb.ModelT.InitFromObj(fb.Model.GetRootAs(bytearray(path.read_bytes()), 0))


def type_name(t):
    from tensorflow.lite.python import schema_py_generated as fb
    return {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}[t.type]


def op_name(model, op):
    from tensorflow.lite.python import schema_py_generated as fb
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}[builtin]


def weighted_ops(model):
    """[(op, activation type, weight tensor, bias tensor or None)] of the conv/dense ops."""
    g = model.subgraphs[0]
    out = []
    for op in g.operators:
        name = op_name(model, op)
        if name in WEIGHTED:
            bias = g.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            out.append((name, type_name(g.tensors[op.inputs[0]]), g.tensors[op.inputs[1]], bias))
    return out


def io_types(model):
    g = model.subgraphs[0]
    return type_name(g.tensors[g.inputs[0]]), type_name(g.tensors[g.outputs[0]])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantize")
    model = tiny.untrained()
    path = tiny.write_source(root / "src", model)
    ds = tiny.blob_dataset(dark_calibration=True, n_calibration=40)
    summary = convert.run(QuantizeConfig(calibration_size=32), path, root / "q", dataset=ds)
    return root / "q", summary, model, ds


@pytest.mark.slow
def test_every_variant_written_with_its_recipe(converted):
    out, summary, _, _ = converted
    names = [v["name"] for v in summary["variants"]]
    assert names == ["float32", "float16", "dynamic_int8", "int8", "int16x8"]
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{n}.tflite" for n in names] + ["quantize.json"])
    assert json.loads((out / "quantize.json").read_text()) == summary
    from quantize.files import sha256
    for v in summary["variants"]:
        assert (out / v["file"]).stat().st_size == v["size_bytes"]
        assert sha256(out / v["file"]) == v["sha256"]
    size = {v["name"]: v["size_bytes"] for v in summary["variants"]}
    assert 0.45 < size["float16"] / size["float32"] < 0.6
    assert size["int8"] / size["float32"] < 0.32          # per-tensor int8, 4 classes: ~0.29
    assert size["dynamic_int8"] / size["float32"] < 0.4
    assert summary["source"]["sha256"] == sha256(out.parent / "src" / "model.keras")
    assert summary["converter"]["tensorflow"] == summary["versions"]["tensorflow"]


@pytest.mark.slow
def test_calibration_uses_the_calibration_split(converted):
    out, summary, _, ds = converted
    cal = summary["calibration"]
    assert cal["split"] == "calibration" and cal["images"] == 32 and cal["available"] == 40
    from quantize.files import sha256
    assert cal["sha256"] == sha256(np.ascontiguousarray(ds.calibration.x[:32]).tobytes())
    # The calibration images are dark (pixels <= 100, so normalized inputs in [-1, -0.2]); the range
    # of the first activation (the luminance, normalized) includes 0, so scale = 1/255. Bright test
    # or train images would have given ~2/255.
    model = read_flatbuffer(out / "int8.tflite")
    g = model.subgraphs[0]
    _, _, luminance, _ = weighted_ops(model)[0]
    first = next(op for op in g.operators if len(op.inputs) > 1 and op.inputs[1] == g.tensors.index(luminance))
    assert g.tensors[first.outputs[0]].quantization.scale[0] == pytest.approx(1 / 255, rel=0.02)
    # The input is the raw pixel whatever the calibration images held (none reached 255).
    q = g.tensors[g.inputs[0]].quantization
    assert (q.scale[0], q.zeroPoint[0]) == (1.0, 0)


@pytest.mark.slow
def test_int8_is_integer_through_and_through(converted):
    out, summary, _, _ = converted
    model = read_flatbuffer(out / "int8.tflite")
    assert io_types(model) == ("UINT8", "UINT8")       # what an app feeds: raw pixels in
    types = {type_name(t) for t in model.subgraphs[0].tensors}
    assert types <= {"UINT8", "INT8", "INT32"}, types   # uint8: the I/O; int32: biases and shape operands
    ops = weighted_ops(model)
    # luminance, stem, 17 blocks (block 0 has no expand), Conv_1, Dense
    assert len(ops) == 1 + 1 + 17 * 3 - 1 + 1 + 1
    # The first op converts RGB to luminance and normalizes, exactly: weights of 64, 127 and 25 steps
    # of 1 / (216 * 127.5), bias -127.5 / 127.5 = -27540 of those steps, on pixels of scale 1.
    name, act, w, b = ops[0]
    assert (name, act, w.shape.tolist()) == ("CONV_2D", "INT8", [1, 1, 1, 3])
    g = model.subgraphs[0]
    assert np.frombuffer(bytes(model.buffers[w.buffer].data), np.int8).tolist() == [64, 127, 25]
    assert np.frombuffer(bytes(model.buffers[b.buffer].data), np.int32).tolist() == [-27540]
    assert w.quantization.scale[0] == pytest.approx(1 / (216 * 127.5), rel=1e-6)
    q = g.tensors[g.inputs[0]].quantization
    assert (q.scale[0], q.zeroPoint[0]) == (1.0, 0)
    assert summary["variants"][3]["input"]["luminance"] and summary["variants"][3]["input"]["normalization_in_graph"]
    for name, act, w, b in ops[1:]:
        assert act == "INT8" and type_name(w) == "INT8", name
        assert b is None or type_name(b) == "INT32", name   # an all-zero bias is dropped
        data = model.buffers[w.buffer].data
        assert len(data) == int(np.prod(w.shape))     # one byte per weight, really stored
        assert len(w.quantization.scale) == 1         # per_tensor, the default
    assert summary["variants"][3]["converter"]["supported_ops"] == ["TFLITE_BUILTINS_INT8"]


@pytest.mark.slow
def test_other_variants_hold_what_their_names_say(converted):
    out, summary, _, _ = converted
    f32 = read_flatbuffer(out / "float32.tflite")
    assert {type_name(w) for _, _, w, _ in weighted_ops(f32)} == {"FLOAT32"}

    f16 = read_flatbuffer(out / "float16.tflite")
    g = f16.subgraphs[0]
    halves = [t for t in g.tensors if type_name(t) == "FLOAT16"]
    assert len(halves) >= len(weighted_ops(f16)) and all(len(f16.buffers[t.buffer].data) for t in halves)
    assert {act for _, act, _, _ in weighted_ops(f16)} == {"FLOAT32"}   # computed in float32

    dyn = read_flatbuffer(out / "dynamic_int8.tflite")
    assert io_types(dyn) == ("FLOAT32", "FLOAT32")
    for name, act, w, _ in weighted_ops(dyn):
        # The converter leaves tensors under 1024 weights (the 3x3x1 stem) in float32.
        want = "INT8" if np.prod(w.shape) >= 1024 else "FLOAT32"
        assert (act, type_name(w)) == ("FLOAT32", want), (name, w.shape)

    x16 = read_flatbuffer(out / "int16x8.tflite")
    assert "float_ops" not in summary["variants"][4]["converter"]   # V2: every op has a 16x8 kernel
    for name, act, w, b in weighted_ops(x16):
        assert (act, type_name(w)) == ("INT16", "INT8"), name
        assert b is None or type_name(b) == "INT64"
        assert len(w.quantization.scale) == w.shape[0 if name != "DEPTHWISE_CONV_2D" else 3]


@pytest.mark.slow
def test_float32_tflite_computes_what_keras_computes(converted):
    out, summary, model, ds = converted
    from ai_edge_litert.interpreter import Interpreter
    assert summary["variants"][0]["input"]["preprocessing"]["channels"] == 3
    x = ds.preprocessing.normalize(np.repeat(ds.test.x[:8], 3, axis=-1))   # a gray frame, in RGB
    it = Interpreter(model_path=str(out / "float32.tflite"))
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(i["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(i["index"], x)
    it.invoke()
    gray = ds.preprocessing.normalize(ds.test.x[:8])
    np.testing.assert_allclose(it.get_tensor(o["index"]), model.predict(gray, verbose=0), atol=1e-5)


@pytest.mark.slow
def test_int8_io_for_npus_and_per_channel(tmp_path):
    path = tiny.write_source(tmp_path / "src", tiny.untrained())
    cfg = QuantizeConfig(variants=("int8",), io="int8", granularity="per_channel", calibration_size=16)
    summary = convert.run(cfg, path, tmp_path / "q", dataset=tiny.blob_dataset())
    model = read_flatbuffer(tmp_path / "q" / "int8.tflite")
    assert io_types(model) == ("INT8", "INT8")
    g = model.subgraphs[0]
    q = g.tensors[g.inputs[0]].quantization
    assert (q.scale[0], q.zeroPoint[0]) == (1.0, -128)   # pixel - 128: the same pixels, as int8
    for name, act, w, _ in weighted_ops(model):
        assert type_name(w) == "INT8"   # weights stay int8; only the I/O tensors change type
        channels = w.shape[3] if name == "DEPTHWISE_CONV_2D" else w.shape[0]
        assert len(w.quantization.scale) == channels, name
    conv = summary["variants"][0]["converter"]
    assert conv["inference_input_type"] == "int8" and conv["granularity"] == "per_channel"


@pytest.mark.slow
def test_as_trained_keeps_the_trained_channels(tmp_path):
    model = tiny.untrained()
    path = tiny.write_source(tmp_path / "src", model)
    cfg = QuantizeConfig(variants=("float32", "int8"), input_color="as_trained", calibration_size=16)
    summary = convert.run(cfg, path, tmp_path / "q", dataset=tiny.blob_dataset())
    f32, int8 = (read_flatbuffer(tmp_path / "q" / f"{v}.tflite") for v in ("float32", "int8"))
    g = f32.subgraphs[0]
    assert g.tensors[g.inputs[0]].shapeSignature.tolist() == [-1, 32, 32, 1]
    assert len(weighted_ops(f32)) == 1 + 17 * 3 - 1 + 1 + 1     # the trained graph, nothing in front
    g = int8.subgraphs[0]
    assert g.tensors[g.inputs[0]].shapeSignature.tolist() == [-1, 32, 32, 1]
    name, _, w, _ = weighted_ops(int8)[0]                       # the normalization, as a 1x1 depthwise conv
    assert name == "DEPTHWISE_CONV_2D" and w.shape.tolist() == [1, 1, 1, 1]
    forms = {v["name"]: v["input"] for v in summary["variants"]}
    assert forms["float32"]["channels"] == forms["int8"]["channels"] == 1
    assert not forms["float32"]["luminance"] and forms["int8"]["normalization_in_graph"]
    assert forms["int8"]["preprocessing"]["mean"] == 0 and forms["float32"]["preprocessing"]["mean"] == 127.5
