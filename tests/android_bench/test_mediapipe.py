"""The exported files in MediaPipe Tasks, the consumer an app uses, and the runner's mediapipe runtime.

On the tiny models of ``bench_build`` (float32, dynamic_int8, int8: seconds); every default variant
of a trained MobileNet is checked the same way in tests/export/test_export_mediapipe.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from android_bench.device import evaluate, runner
from android_bench.device.evaluate import Classifier
from tests.mediapipe_checks import classify, read_back

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--runs", "5", "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0"]


def test_every_variant_loads_in_mediapipe_and_agrees_with_the_runner(bench_build):
    b = bench_build
    for model in b.models:
        top, names = classify(model, b.x)             # gray 16x16 test images, as RGB frames
        assert names == set(b.labels), model.name      # it returns the label names
        runner_top1 = evaluate.evaluate(Classifier(str(model)), b.x, b.y, b.labels).top1
        assert abs(np.mean(top == b.y) - runner_top1) <= 0.001, (model.name, np.mean(top == b.y), runner_top1)
        assert runner_top1 > 0.9


def test_mediapipes_own_reader_finds_normalization_labels_and_color_space(bench_build):
    for model in bench_build.models:
        meta = read_back(model)
        assert meta["identifier"] and meta["min_parser_version"] == "1.0.0" and meta["license"] == "Apache-2.0"
        assert meta["color_space"] == "RGB" and meta["labels"] == bench_build.labels
        if model.stem == "int8":   # raw uint8 pixels in; the model normalizes inside
            assert (meta["mean"], meta["std"], meta["stats"]) == ([0.0] * 3, [1.0] * 3, ([0.0], [255.0]))
        else:                      # (pixel - 127.5) / 127.5, as imagedata/preprocess.py says
            assert (meta["mean"], meta["std"], meta["stats"]) == ([127.5] * 3, [127.5] * 3, ([-1.0], [1.0]))


@pytest.mark.slow
def test_the_runners_mediapipe_runtime_times_classify(bench_build, tmp_path):
    b = bench_build
    unloadable = tmp_path / "raw.tflite"    # the converter's float32, 1 channel, no metadata: MediaPipe refuses it
    unloadable.write_bytes((b.root / "quantize" / "float32.tflite").read_bytes())
    out = tmp_path / "results.json"
    r = subprocess.run([sys.executable, "-m", "android_bench.device.runner", *map(str, b.models), str(unloadable),
                        "--runtime", "mediapipe", "--eval-pack", str(b.root / "eval_pack.npz"), "--out", str(out),
                        "--threads", "1,2", "--xnnpack", "both", *QUICK],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == runner.EXIT_FAILED_VARIANTS, r.stderr
    doc = json.loads(out.read_text())
    assert doc["environment"]["runtime"] == "mediapipe" and doc["fingerprint"]["runtime"] == "mediapipe"
    rows = {row["file"]: row for row in doc["results"]}
    assert len(doc["results"]) == 4                # one classify() job per model: no threads or XNNPACK to set
    for model in b.models:
        row = rows[model.name]
        assert row["error"] is None, row["error"]
        assert row["threads"] == 1 and row["runtime"] == "mediapipe" and row["runtime_version"] == "1.2.3"
        assert 0 < row["min_ms"] <= row["median_ms"] <= row["p90_ms"] and row["init_ms"] > 0 and row["runs"] >= 5
        assert row["top_category"]["label"] in b.labels
        expected = evaluate.evaluate(Classifier(str(model)), b.x, b.y, b.labels)
        assert abs(row["top1"] - expected.top1) <= 0.001 and row["images"] == len(b.y)
        assert np.mean(np.array(doc["predictions"][model.stem]) == expected.predictions) >= 0.99
    broken = rows["raw.tflite"]["error"]
    assert "MediaPipe Tasks cannot load" in broken and "requires specifying NormalizationOptions" in broken, broken


def test_device_side_imports_mediapipe_only_for_that_runtime(bench_build):
    code = ("import sys\n"
            "from android_bench.device import measure, runner\n"
            f"measure.latency({str(bench_build.models[0])!r}, None, 1, True, None, measure.Protocol(1, 0, 2, 0))\n"
            "runner.check_environment(None)\n"
            "print('mediapipe' in sys.modules, 'cv2' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]


def test_check_names_mediapipe_and_its_version():
    r = subprocess.run([sys.executable, "-m", "android_bench.device.runner", "--check", "--runtime", "mediapipe"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    env = json.loads(r.stdout)
    assert (env["runtime"], env["runtime_version"]) == ("mediapipe", "1.2.3")
