"""The runner where TensorFlow is absent: numpy<2 and tflite-runtime 2.14.0 only (a Pi's stack)."""
from __future__ import annotations

import json
import subprocess

import pytest

from android_bench import bench
from android_bench.config import BenchConfig
from android_bench.device.measure import Protocol
from android_bench.targets import LocalTarget, parse_target

QUICK = BenchConfig(threads=(1, 2), protocol=Protocol(warmup_runs=1, warmup_seconds=0, runs=5, min_seconds=0))


@pytest.mark.slow
def test_runner_in_a_tflite_runtime_only_venv(tflite_runtime_python, bench_build, tmp_path):
    r = subprocess.run([str(tflite_runtime_python), "-c", "import tensorflow"], capture_output=True, text=True)
    assert r.returncode != 0 and "No module named 'tensorflow'" in r.stderr
    result = bench.run(QUICK, LocalTarget(python=str(tflite_runtime_python)), bench_build.models,
                       bench_build.root / "eval_pack.npz", tmp_path / "bench")
    doc = result.doc
    assert doc["environment"]["runtime"] == "tflite_runtime" and doc["environment"]["runtime_version"] == "2.14.0"
    assert doc["fingerprint"]["numpy"].startswith("1.")
    assert result.path.name == "local__tflite_runtime.json"
    rows = {(r["variant"], r["threads"]): r for r in doc["results"]}
    assert len(rows) == 6
    for (variant, threads), row in rows.items():
        assert row["runtime"] == "tflite_runtime"
        # Whatever 2.14 cannot run (newer op versions than it knows) is recorded, not fatal.
        if row["error"] is None:
            assert row["median_ms"] > 0 and row["top1"] > 0.9
    assert rows[("float32", 1)]["error"] is None and rows[("float32", 1)]["agreement"] == 1.0
    if result.failed:
        assert all("op" in rows[(v, 1)]["error"] for v in result.failed), result.failed


@pytest.mark.slow
def test_runner_on_python_3_9(python39_tflite_runtime, bench_build, tmp_path):
    """The device runner's oldest Python: the whole run, accuracy and latency, on 3.9 with numpy 1.x."""
    result = bench.run(QUICK, LocalTarget(python=str(python39_tflite_runtime)), bench_build.models,
                       bench_build.root / "eval_pack.npz", tmp_path / "bench")
    doc = result.doc
    assert doc["environment"]["python"].startswith("3.9.") and doc["environment"]["numpy"].startswith("1.")
    assert doc["environment"]["runtime"] == "tflite_runtime"
    float32 = [r for r in doc["results"] if r["variant"] == "float32"]
    assert float32 and all(r["error"] is None and r["median_ms"] > 0 for r in float32)
    assert float32[0]["top1"] > 0.9 and float32[0]["agreement"] == 1.0
    assert len(doc["predictions"]["float32"]) == float32[0]["images"]


@pytest.mark.slow
def test_tflite_runtime_over_ssh(tflite_runtime_python, sshd, bench_build, tmp_path):
    target = parse_target(sshd.spec, str(tflite_runtime_python), sshd.options)
    result = bench.run(QUICK, target, bench_build.models[:1], bench_build.root / "eval_pack.npz", tmp_path)
    assert result.failed == []
    assert json.loads(result.path.read_text())["results"][0]["runtime_version"] == "2.14.0"
