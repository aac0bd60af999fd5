"""Every variant the default export writes, in MediaPipe Tasks: a trained MobileNet V2 (the
pipeline fixture) loads, returns its label names, and agrees with the device runner."""
import numpy as np
import pytest

from android_bench.device.evaluate import Classifier, evaluate
from tests.mediapipe_checks import classify, read_back
from tests.quantize import tiny

VARIANTS = ["float32", "float16", "dynamic_int8", "int8", "int16x8"]


@pytest.mark.slow
def test_every_default_variant_loads_in_mediapipe_and_agrees_with_the_runner(pipeline):
    ds, root = pipeline.ds, pipeline.root
    assert [v["name"] for v in pipeline.manifest["variants"]] == VARIANTS
    for name in VARIANTS:
        path = root / f"{name}.tflite"
        top, names = classify(path, ds.test.x)            # 32x32 frames: MediaPipe's resize is the identity
        assert names == set(tiny.LABELS), name
        runner = evaluate(Classifier(str(path)), ds.test.x, ds.test.y, tiny.LABELS)
        assert abs(np.mean(top == ds.test.y) - runner.top1) <= 0.001, (name, np.mean(top == ds.test.y), runner.top1)
        assert runner.top1 > 0.85, name


@pytest.mark.slow
def test_every_default_variant_reads_back_with_mediapipes_bindings(pipeline):
    for name in VARIANTS:
        meta = read_back(pipeline.root / f"{name}.tflite")
        assert meta["identifier"] and meta["color_space"] == "RGB" and meta["labels"] == tiny.LABELS
        assert meta["name"] == f"MobileNet V2 0.35 32x32 {name}" and meta["license"] == "Apache-2.0"
        assert meta["version"] == pipeline.manifest["model"]["sha256"][:12]
        pixels = name == "int8"      # raw pixels in; (p - 127.5) / 127.5 inside the graph
        assert (meta["mean"], meta["std"]) == (([0.0] * 3, [1.0] * 3) if pixels else ([127.5] * 3, [127.5] * 3))
