"""The runner where TensorFlow is absent: numpy<2 and tflite-runtime only (a Pi's stack), on Python 3.11 and 3.9."""
from __future__ import annotations

import json
import subprocess

import pytest

from android_bench import bench
from android_bench.config import BenchConfig
from android_bench.device.measure import Protocol
from android_bench.targets import LocalTarget, parse_target
from tests.android_bench.conftest import VARIANTS

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
    assert sorted(rows) == sorted((v, t) for v in VARIANTS for t in (1, 2))
    # Every variant of this converter runs on tflite-runtime 2.14: a row that failed is a failure here.
    assert result.failed == [], {k: r["error"] for k, r in rows.items() if r["error"]}
    for (variant, threads), row in rows.items():
        assert row["runtime"] == "tflite_runtime" and row["median_ms"] > 0 and row["top1"] > 0.9, row
    assert rows[("float32", 1)]["agreement"] == 1.0
    assert len(doc["predictions"]["int8"]) == rows[("int8", 1)]["images"] == len(bench_build.y)


@pytest.mark.arm
def test_runner_on_python_3_9(bullseye, bench_build, tmp_path):
    """The device runner's oldest Python, for real: Debian bullseye's 3.9 in the emulated Pi, with
    numpy 1.26 and tflite-runtime 2.13 (the newest with a wheel there), whole run, accuracy and latency."""
    one = BenchConfig(threads=(1,), protocol=QUICK.protocol)
    target = parse_target(bullseye.target, bullseye.venvs["tflite_runtime"])
    result = bench.run(one, target, bench_build.models, bench_build.root / "eval_pack.npz", tmp_path / "bench")
    doc = result.doc
    assert doc["environment"]["python"].startswith("3.9.") and doc["environment"]["numpy"].startswith("1.")
    assert (doc["environment"]["runtime"], doc["environment"]["runtime_version"]) == ("tflite_runtime", "2.13.0")
    assert doc["fingerprint"]["arch"] == "aarch64" and doc["emulation"]
    rows = {r["variant"]: r for r in doc["results"]}
    assert sorted(rows) == sorted(VARIANTS)
    assert result.failed == [], {v: r["error"] for v, r in rows.items() if r["error"]}
    for row in rows.values():
        assert row["median_ms"] > 0 and row["top1"] > 0.9, row
    assert rows["float32"]["agreement"] == 1.0
    assert len(doc["predictions"]["float32"]) == rows["float32"]["images"] == len(bench_build.y)


@pytest.mark.slow
def test_tflite_runtime_over_ssh(tflite_runtime_python, sshd, bench_build, tmp_path):
    target = parse_target(sshd.spec, str(tflite_runtime_python), sshd.options)
    result = bench.run(QUICK, target, bench_build.models[:1], bench_build.root / "eval_pack.npz", tmp_path)
    assert result.failed == []
    assert json.loads(result.path.read_text())["results"][0]["runtime_version"] == "2.14.0"
