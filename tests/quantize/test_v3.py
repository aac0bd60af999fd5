"""MobileNet V3 through quantization: a tiny V3 trains, converts to every variant, runs in full
int8 with HARD_SWISH and the squeeze-and-excite multiply in int8, and --max-drop repairs one
that int8 breaks on purpose."""
from collections import Counter

import numpy as np
import pytest

from android_bench.device.evaluate import Classifier, agreement, evaluate
from quantize import convert, graph
from quantize.config import QuantizeConfig
from tests.quantize import tiny
from train import fit

CFG = tiny.CFG.replace(arch="v3-small", alpha=0.35)
# Block 2 of V3 Small: 1x1 expand -> BN -> ReLU -> 3x3 depthwise at stride 1, no squeeze-and-excite.
WIDE, READS_WIDE = "expanded_conv_2_expand", "expanded_conv_2_depthwise"
OUTLIER = 1000.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A V3 Small 0.35 trained by train.fit on the blob task, and its every-variant conversion."""
    root = tmp_path_factory.mktemp("v3")
    ds = tiny.blob_dataset()
    record = fit.run(CFG, root / "train", dataset=ds, verbose=0)
    summary = convert.run(QuantizeConfig(calibration_size=64), root / "train" / "model.keras", root / "q",
                          dataset=ds)
    return root, ds, record, summary


def _top1(path, ds, split="test"):
    part = getattr(ds, split)
    return evaluate(Classifier(path.read_bytes(), preprocessing=ds.preprocessing), part.x, part.y, ds.labels)


@pytest.mark.slow
def test_tiny_v3_trains_and_converts_to_every_variant(trained):
    root, ds, record, summary = trained
    assert record["test_top1"] > 0.9, record["history"]
    assert record["config"]["arch"] == "v3-small"
    assert [v["name"] for v in summary["variants"]] == ["float32", "float16", "dynamic_int8", "int8", "int16x8"]
    reference = _top1(root / "q" / "float32.tflite", ds)
    assert reference.top1 > 0.9
    for v in summary["variants"][1:]:
        result = _top1(root / "q" / v["file"], ds)
        assert result.top1 > 0.85, v["name"]
        assert agreement(result.predictions, reference.predictions) > 0.85, v["name"]


@pytest.mark.slow
def test_full_int8_keeps_hard_swish_and_the_squeeze_excite_multiply_in_int8(trained):
    root, _, _, summary = trained
    model = (root / "q" / "int8.tflite").read_bytes()
    assert graph.float_ops(model) == []                     # the op check convert ran, repeated
    assert graph.io_types(model) == (["int8"], ["int8"])
    ops = graph.ops(model)
    counts = Counter(op.name for op in ops)
    # 8 blocks with hard-swish after expand and depthwise, plus the stem, conv_1 and conv_2.
    assert counts["HARD_SWISH"] == 2 * 8 + 3, counts
    gates = [op for op in ops if op.name == "MUL" and "squeeze_excite_mul" in op.tensor]
    assert len(gates) == 9                                  # block 0 and blocks 3-10
    for op in [o for o in ops if o.name in ("HARD_SWISH", "MUL", "MEAN")]:
        assert set(op.inputs + op.outputs) <= {"int8", "int32", ""}, op
    assert "float_ops" not in summary["variants"][3]["converter"]


@pytest.mark.slow
def test_int16x8_keeps_only_hard_swish_in_float_and_says_so(trained):
    """TensorFlow 2.21 has no 16x8 HARD_SWISH kernel: TFLite's fallback keeps it in float32."""
    root, _, _, summary = trained
    int16x8 = summary["variants"][4]
    model = (root / "q" / "int16x8.tflite").read_bytes()
    recorded = int16x8["converter"]["float_ops"]
    assert {f["op"] for f in recorded} == {"HARD_SWISH"}
    assert recorded == [{"op": op.name, "tensor": op.tensor} for op in graph.float_ops(model)]
    assert len(recorded) == Counter(op.name for op in graph.ops(model))["HARD_SWISH"]


def _rewritten(root):
    """The trained model with one channel of WIDE's activation 1000x wider and READS_WIDE's weights
    for it 1000x smaller: the same float function (ReLU is positively homogeneous), and an
    activation range per-tensor int8 cannot hold."""
    import keras
    m = keras.models.load_model(root / "train" / "model.keras")
    bn = m.get_layer(WIDE + "_bn")
    gamma, beta, mean, var = bn.get_weights()
    gamma[0] *= OUTLIER
    beta[0] *= OUTLIER
    bn.set_weights([gamma, beta, mean, var])
    dw = m.get_layer(READS_WIDE)
    (kernel,) = dw.get_weights()
    kernel[:, :, 0, :] /= OUTLIER
    dw.set_weights([kernel])
    return m


@pytest.mark.slow
def test_max_drop_on_v3_lists_the_layers_it_kept_in_float(trained, tmp_path):
    root, ds, _, _ = trained
    m = _rewritten(root)
    x = ds.preprocessing.normalize(ds.val.x)
    assert np.mean(m.predict(x, verbose=0).argmax(1) == ds.val.y) > 0.9
    src = tiny.write_source(tmp_path / "src", m, config=CFG)
    budget = 5.0
    summary = convert.run(QuantizeConfig(variants=("float32", "int8"), calibration_size=64, max_drop=budget),
                          src, tmp_path / "q", dataset=ds)
    b = summary["accuracy_budget"]
    assert b["int8_drop_pts"] > budget >= b["drop_pts"] and b["met"] is True
    kept = [f["layer"] for f in b["float_layers"]]
    assert kept and set(kept) <= {WIDE, READS_WIDE}, b["steps"]
    assert all(name in b["message"] for name in kept)
    left = graph.float_ops((tmp_path / "q" / "int8.tflite").read_bytes())
    assert {op.tensor for op in left} == {f["tensor"] for f in b["float_layers"]}
    assert _top1(tmp_path / "q" / "int8.tflite", ds, "val").top1 == b["top1"]
