"""The device runner: the measurement contract, runtime choice, accuracy, and failures kept per variant."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from android_bench.device import evaluate, measure, runner
from android_bench.device.evaluate import Classifier, EvaluationError, interpreter_class
from android_bench.device.measure import Protocol, ProtocolError
from tests.android_bench.conftest import shadow_runtimes, with_op_version

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--runs", "5", "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0"]


class FakeClock:
    """invoke() takes 1, 2, 3, ... ms in turn; the clock only moves inside invoke()."""

    def __init__(self):
        self.now, self.calls = 0.0, 0

    def __call__(self):
        return self.now

    def invoke(self):
        self.calls += 1
        self.now += self.calls / 1000.0


def test_timed_region_counts_and_statistics():
    clock = FakeClock()
    t = measure.time_invoke(clock.invoke, Protocol(warmup_runs=2, warmup_seconds=0.01, runs=10, min_seconds=0),
                            clock=clock)
    # first: 1 ms; warm-up: 2+3+4+5 ms reach both 2 runs and 10 ms; timed: 6..15 ms (10 runs)
    assert t["first_ms"] == pytest.approx(1.0)
    assert t["warmup_runs"] == 4 and t["warmup_seconds"] == pytest.approx(0.014)
    timed = np.arange(6, 16, dtype=np.float64)
    assert t["runs"] == 10 and t["timed_seconds"] == pytest.approx(timed.sum() / 1000)
    assert t["min_ms"] == pytest.approx(6) and t["median_ms"] == pytest.approx(10.5)
    assert t["mean_ms"] == pytest.approx(10.5) and t["std_ms"] == pytest.approx(timed.std())
    assert t["p90_ms"] == pytest.approx(np.percentile(timed, 90)) == pytest.approx(14.1)
    assert t["p99_ms"] == pytest.approx(14.91)

    clock = FakeClock()   # min_seconds extends the timed runs past the count
    t = measure.time_invoke(clock.invoke, Protocol(warmup_runs=0, warmup_seconds=0, runs=1, min_seconds=0.0195),
                            clock=clock)
    assert t["warmup_runs"] == 0 and t["runs"] == 5   # 2+3+4+5+6 ms >= 19.5 ms


def test_protocol_rejects_nonsense():
    with pytest.raises(ProtocolError, match="runs must be an integer >= 1, got 0"):
        Protocol(runs=0)
    with pytest.raises(ProtocolError, match="min_seconds must be >= 0 seconds, got -1"):
        Protocol(min_seconds=-1)


def _fake_runtime(name: str, version: str) -> dict:
    package = types.ModuleType(name)
    package.__version__ = version
    module = types.ModuleType(f"{name}.interpreter")

    class Interpreter:
        pass
    Interpreter.__module__ = module.__name__
    module.Interpreter = Interpreter
    return {name: package, f"{name}.interpreter": module}


def test_runtime_fallback_order(monkeypatch):
    for name in evaluate.RUNTIMES:
        monkeypatch.setitem(sys.modules, name, None)          # None in sys.modules: "not installed"
    with pytest.raises(EvaluationError, match=r"no TFLite interpreter \(ai_edge_litert: not installed; "
                                              r"tflite_runtime: not installed; tensorflow: not installed\): "
                                              r"pip install ai-edge-litert, or pip install tflite-runtime 'numpy<2'"):
        interpreter_class()

    tf = types.ModuleType("tensorflow")
    tf.__version__ = "2.99"
    tf.lite = types.SimpleNamespace(Interpreter=object)
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    assert interpreter_class()[1] == {"name": "tensorflow.lite", "version": "2.99"}

    for name, module in _fake_runtime("tflite_runtime", "2.14.0").items():
        monkeypatch.setitem(sys.modules, name, module)
    cls, info = interpreter_class()
    assert info == {"name": "tflite_runtime", "version": "2.14.0"} and cls.__name__ == "Interpreter"

    for name, module in _fake_runtime("ai_edge_litert", "9.9").items():
        monkeypatch.setitem(sys.modules, name, module)
    assert interpreter_class()[1]["name"] == "ai_edge_litert"
    assert interpreter_class("tflite_runtime")[1]["name"] == "tflite_runtime"   # --runtime forces one
    assert interpreter_class("auto")[1]["name"] == "ai_edge_litert"

    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(EvaluationError, match=r"the runtime tflite_runtime cannot be used \(tflite_runtime: not "
                                              r"installed\): pip install tflite-runtime 'numpy<2'"):
        interpreter_class("tflite_runtime")
    with pytest.raises(EvaluationError, match="runtime must be 'auto' or one of"):
        interpreter_class("tflite")


def test_check_without_runtime_says_what_to_install(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(shadow_runtimes(tmp_path / "shadow")))
    r = subprocess.run([sys.executable, "-m", "android_bench.device.runner", "--check"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == runner.EXIT_ENVIRONMENT, r.stderr
    assert "no TFLite interpreter" in r.stderr and "pip install tflite-runtime 'numpy<2'" in r.stderr
    assert "pip install ai-edge-litert" in r.stderr and r.stdout == ""

    r = subprocess.run([sys.executable, "-m", "android_bench.device.runner", "--check"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    env_info = json.loads(r.stdout)
    assert env_info["runtime"] == "ai_edge_litert" and env_info["numpy"] == np.__version__


def _run(args, cwd=ROOT, python=sys.executable, timeout=300):
    return subprocess.run([str(python), "-m", "android_bench.device.runner", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_runner_measures_each_variant_and_records_the_broken_ones(bench_build, tmp_path):
    b = bench_build
    old_op = tmp_path / "old_runtime.tflite"   # an op version this runtime does not have
    old_op.write_bytes(with_op_version((b.root / "int8.tflite").read_bytes()))
    garbage = tmp_path / "truncated.tflite"
    garbage.write_bytes((b.root / "float32.tflite").read_bytes()[:300])
    out = tmp_path / "results.json"
    r = _run([*b.models, old_op, garbage, "--eval-pack", b.root / "eval_pack.npz", "--out", out,
              "--threads", "1,2", *QUICK])
    assert r.returncode == runner.EXIT_FAILED_VARIANTS, r.stderr
    assert "2 of 5 models failed (old_runtime, truncated)" in r.stderr
    progress = [ln for ln in r.stderr.splitlines() if ln.startswith("[")]
    assert len(progress) == 5 * 3 and progress[-1].startswith("[15/15] ")

    doc = json.loads(out.read_text())
    rows = {(row["variant"], row["threads"]): row for row in doc["results"]}
    assert sorted(rows) == sorted((v, t) for v in ("float32", "dynamic_int8", "int8", "old_runtime", "truncated")
                                  for t in (1, 2))
    assert [row["variant"] for row in doc["results"]][:2] == ["float32", "float32"]   # the reference first
    for v in ("float32", "dynamic_int8", "int8"):
        clf = Classifier(str(b.root / f"{v}.tflite"))
        expected = evaluate.evaluate(clf, b.x, b.y, b.labels)
        ref = evaluate.evaluate(Classifier(str(b.root / "float32.tflite")), b.x, b.y, b.labels)
        for t in (1, 2):
            row = rows[(v, t)]
            assert row["error"] is None, row["error"]
            assert 0 < row["min_ms"] <= row["median_ms"] <= row["p90_ms"] <= row["p99_ms"]
            assert row["runs"] >= 5 and row["warmup_runs"] >= 1 and row["init_ms"] > 0 and row["first_ms"] > 0
            assert row["runtime"] == "ai_edge_litert" and row["xnnpack"] is True
            assert row["peak_rss_kb"] > row["baseline_rss_kb"] > 0
            assert row["top1"] == expected.top1 and row["top1"] > 0.9
            assert row["per_class_top1"] == expected.per_class_top1 and row["images"] == len(b.y)
            assert row["agreement"] == evaluate.agreement(expected.predictions, ref.predictions)
            assert row["size_bytes"] == (b.root / f"{v}.tflite").stat().st_size
        assert rows[(v, 1)]["input"]["dtype"] == ("uint8" if v == "int8" else "float32")   # what an app feeds
        assert rows[(v, 1)]["input"]["shape"] == [1, 16, 16, 3]                           # RGB, batch 1
        assert rows[(v, 1)]["metadata"] == {"missing": [], "problems": []}
    assert rows[("float32", 1)]["agreement"] == 1.0
    assert "version '99'" in rows[("old_runtime", 1)]["error"]
    assert rows[("old_runtime", 1)]["top1"] is None and rows[("old_runtime", 1)]["agreement"] is None
    assert "truncated" in rows[("truncated", 2)]["error"] or "corrupt" in rows[("truncated", 2)]["error"]

    fp = doc["fingerprint"]
    for key in ("hostname", "arch", "cpu", "cores", "os", "python", "numpy", "runtime", "runtime_version",
                "governor", "temperature_c", "vcgencmd"):
        assert key in fp
    assert fp["numpy"] == np.__version__ and fp["runtime"] == "ai_edge_litert" and fp["cores"] >= 1
    assert doc["protocol"] == {"warmup_runs": 1, "warmup_seconds": 0.0, "runs": 5, "min_seconds": 0.0}


def test_xnnpack_on_and_off(bench_build, tmp_path):
    out = tmp_path / "results.json"
    r = _run([bench_build.root / "float32.tflite", "--out", out, "--xnnpack", "both", *QUICK])
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["results"]
    assert [(row["xnnpack"], row["error"]) for row in rows] == [(True, None), (False, None)]
    assert rows[0]["top1"] is None   # no eval pack: latency only, on a grey image
    assert rows[0]["xnnpack_delegate_logged"] and not rows[1]["xnnpack_delegate_logged"]


def test_batched_evaluation_equals_image_by_image(bench_build):
    b = bench_build
    x = np.concatenate([b.x, b.x[:37]])   # 237 images: the last batch of 64 is padded
    y = np.concatenate([b.y, b.y[:37]])
    for model in b.models:
        batched, single = Classifier(str(model), batch_size=64), Classifier(str(model), batch_size=1)
        assert batched.batch_size == 64 and single.batch_size == 1
        eb, es = evaluate.evaluate(batched, x, y, b.labels), evaluate.evaluate(single, x, y, b.labels)
        np.testing.assert_array_equal(eb.predictions, es.predictions)
        assert eb.top1 == es.top1 and eb.per_class_top1 == es.per_class_top1
        np.testing.assert_allclose(batched.scores(x), single.scores(x), atol=1e-6)


@pytest.mark.parametrize("arch", ["v1", "v3-small"])
def test_a_reshape_head_is_evaluated_in_batches_too(tmp_path, arch):
    """V1's Reshape and V3's Flatten compute the output's shape at run time, so the output's
    batch is unknown until a run: the evaluator must still batch them, with the same answers."""
    import tensorflow as tf

    from imagedata.preprocess import Preprocessing
    from train.mobilenet import mobilenet_v1
    from train.mobilenet_v3 import mobilenet_v3

    shape = (16, 16, 3)
    model = (mobilenet_v1(shape, 4, alpha=0.25, output_stride=8) if arch == "v1"
             else mobilenet_v3("small", shape, 4, alpha=0.25, output_stride=8))
    path = tmp_path / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    x = np.random.default_rng(0).integers(0, 256, (70, *shape), dtype=np.uint8)
    pre = Preprocessing(resolution=16, channels=3)
    batched, single = (Classifier(str(path), pre, batch_size=64), Classifier(str(path), pre, batch_size=1))
    assert batched.batch_size == 64
    np.testing.assert_allclose(batched.scores(x), single.scores(x), atol=1e-6)


def test_runner_usage_errors(bench_build, tmp_path):
    r = _run([tmp_path / "missing.tflite"])
    assert r.returncode == runner.EXIT_USAGE and "no such file" in r.stderr
    r = _run([bench_build.models[0], "--threads", "0"])
    assert r.returncode == runner.EXIT_USAGE and "threads must be comma-separated integers >= 1" in r.stderr
    r = _run([bench_build.models[0], "--runs", "0"])
    assert r.returncode == runner.EXIT_USAGE and "runs must be an integer >= 1" in r.stderr


def test_missing_or_corrupt_metadata_still_benchmarks_and_the_report_says_what_is_missing(bench_build, tmp_path):
    from android_bench import report
    from export.metadata import pack
    b = bench_build
    bare = tmp_path / "bare.tflite"          # the converter's own output: no metadata at all
    bare.write_bytes((b.root / "quantize" / "int8.tflite").read_bytes())
    corrupt = tmp_path / "corrupt.tflite"    # a TFLITE_METADATA entry that is not a ModelMetadata flatbuffer
    corrupt.write_bytes(pack((b.root / "quantize" / "float32.tflite").read_bytes(),
                             {"TFLITE_METADATA": b"\x08\x00\x00\x00XXXX not metadata"}))
    out = tmp_path / "results" / "local__ai_edge_litert.json"
    out.parent.mkdir()
    r = _run([bare, corrupt, b.root / "int8.tflite", "--eval-pack", b.root / "eval_pack.npz", "--out", out,
              "--threads", "1", *QUICK])
    assert r.returncode == 0, r.stderr       # nothing failed: what could be measured was
    rows = {row["variant"]: row for row in json.loads(out.read_text())["results"]}
    for name in ("bare", "corrupt"):
        row = rows[name]
        assert row["error"] is None and row["median_ms"] > 0 and row["top1"] is None
        assert row["accuracy_skipped"].startswith("top-1 not measured:"), row["accuracy_skipped"]
    assert rows["bare"]["metadata"]["missing"][0].startswith("TFLITE_METADATA (the standard TFLite Model Metadata")
    assert "not a ModelMetadata flatbuffer (file identifier b'XXXX', expected b'M001')" in \
        rows["corrupt"]["metadata"]["problems"][0]
    assert rows["int8"]["metadata"] == {"missing": [], "problems": []} and rows["int8"]["top1"] > 0.9
    md = report.markdown(report.load(tmp_path / "results")[0])
    assert "Metadata missing or corrupt (latency was measured all the same):" in md
    assert "- bare.tflite (ai_edge_litert): TFLITE_METADATA (the standard TFLite Model Metadata" in md
    assert "- corrupt.tflite (ai_edge_litert): " in md and "int8.tflite (ai_edge_litert)" not in md
