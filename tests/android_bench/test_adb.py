"""The adb target, end to end, against a test double of adb and a stand-in benchmark_model.

tests/android_bench/fake_adb.py is a TEST DOUBLE of adb (no phone or emulator
runs here): it executes what it is handed on this machine -- ``push`` copies
into a folder standing for the phone, ``shell`` runs the command there with
sh, ``getprop`` answers from the phone's property table.
tests/android_bench/fake_benchmark_model.py stands in for the benchmark_model
binary: it really runs each model through android_bench.device and prints in
benchmark_model's format. So the whole path -- device discovery, push, run per
variant/threads/delegate under taskset, parse, accuracy, results file, report
-- runs for real.
"""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from android_bench.__main__ import cli
from android_bench.adb import AdbSession, AdbTarget, cpu_mask, fingerprint
from android_bench.device.evaluate import Classifier, evaluate
from android_bench.targets import TargetError, parse_target
from tests.android_bench import fake_benchmark_model
from tests.android_bench.fake_adb import FakeDevice, install

SERIAL = "28031FDH2000AB"
PROPS = {"ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
         "ro.product.model": "Pixel 7", "ro.product.manufacturer": "Google", "ro.soc.model": "GS201",
         "ro.board.platform": "gs201", "ro.hardware": "panther", "ro.build.version.release": "14",
         "ro.build.version.sdk": "34"}
QUICK = ["--runs", "5", "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0"]


def big_little() -> dict[int, int]:
    """Max clocks (kHz) of the fake phone's CPUs: this machine's usable CPUs, the last one "big",
    so the taskset mask --big-cores computes names a CPU that exists here."""
    cpus = sorted(os.sched_getaffinity(0))
    return {c: 2850000 if c == cpus[-1] else 1800000 for c in cpus}


@pytest.fixture
def phones(tmp_path, monkeypatch):
    """An adb test double first on PATH; returns the folder that holds the fake phones."""
    install(tmp_path / "adb-bin")
    home = tmp_path / "phones"
    home.mkdir()
    monkeypatch.setenv("PATH", f"{tmp_path / 'adb-bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_HOME", str(home))
    monkeypatch.delenv("ANDROID_BENCH_ADB", raising=False)
    monkeypatch.delenv("ANDROID_BENCH_BENCHMARK_MODEL", raising=False)
    return home


@pytest.fixture
def phone(phones):
    return FakeDevice(phones, SERIAL).create(PROPS, max_freq_khz=big_little())


@pytest.fixture
def stand_in(tmp_path):
    return fake_benchmark_model.install(tmp_path / "benchmark_model")


def _resolve(spec: str) -> AdbTarget:
    return parse_target(spec).resolved()


def test_finding_the_device_says_what_to_do(phones):
    with pytest.raises(TargetError, match="no Android device: `adb devices` lists none. Connect the phone"):
        _resolve("adb")
    FakeDevice(phones, "A1").create(PROPS)
    FakeDevice(phones, "B2").create(PROPS)
    with pytest.raises(TargetError, match=r"2 devices are attached \(A1 \(device\), B2 \(device\)\): "
                                          r"choose one with --target adb:SERIAL"):
        _resolve("adb")
    # the test double behaves as adb does without -s
    r = subprocess.run(["adb", "shell", "true"], capture_output=True, text=True)
    assert r.returncode == 1 and "more than one device/emulator" in r.stderr
    assert _resolve("adb:B2").spec == "adb:B2"
    with pytest.raises(TargetError, match="device 'C3' is not attached; `adb devices` lists: A1, B2"):
        _resolve("adb:C3")
    FakeDevice(phones, "B2").create(PROPS, state="unauthorized")
    with pytest.raises(TargetError, match="B2 is unauthorized: unlock the phone and accept the 'Allow USB debugging"):
        _resolve("adb:B2")
    FakeDevice(phones, "A1").create(PROPS, state="offline")
    with pytest.raises(TargetError, match="A1 is offline: unplug and replug"):
        _resolve("adb:A1")
    with pytest.raises(TargetError, match="an adb target is 'adb' or 'adb:SERIAL'"):
        parse_target("adb:two words")


def test_no_adb_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ANDROID_BENCH_ADB", raising=False)
    with pytest.raises(TargetError, match="adb was not found on PATH: install Android's platform tools"):
        parse_target("adb")


def test_fingerprint_big_cores_push_and_cleanup(phone, tmp_path):
    target = _resolve("adb")
    assert target.spec == f"adb:{SERIAL}" and target.slug() == f"adb_{SERIAL}"
    info = target.cpu_info()
    fp = fingerprint(target, target.getprop(), info, {"name": "benchmark_model", "version": "sha256:x"})
    assert (fp["hostname"], fp["abi"], fp["soc"], fp["os"]) == ("Google Pixel 7", "arm64-v8a", "GS201",
                                                              "Android 14 (SDK 34)")
    assert fp["cores"] == len(os.sched_getaffinity(0)) and fp["governor"] == "schedutil"
    assert fp["temperature_c"] == {"cpu-therm": 41.0} and fp["device_model"] == "Pixel 7"
    last = max(os.sched_getaffinity(0))
    assert target.big_cores(info) == [last] and fp["cpu_max_freq_mhz"][str(last)] == 2850
    assert cpu_mask([4, 5, 6, 7]) == "f0" and cpu_mask([0]) == "1"
    local = tmp_path / "payload.bin"
    local.write_bytes(os.urandom(3000))
    with AdbSession(target) as session:
        assert session.folder.startswith("/data/local/tmp/android_bench.")
        session.upload({"sub/dir/payload.bin": local})
        assert session.read("sub/dir/payload.bin") == local.read_bytes()
        assert phone.tmp_entries() == [session.folder.rsplit("/", 1)[1]]
    assert phone.tmp_entries() == []   # removed afterwards


def test_wrong_abi_binary_is_a_clear_error(phone, bench_build, tmp_path):
    # an ELF header for a machine no kernel (or binfmt handler) here runs: exec fails as on a phone
    # given the other ABI's build
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\x34\x12" + bytes(44))
    binary.chmod(0o755)
    r = CliRunner().invoke(cli, ["run", "--target", "adb", "--benchmark-binary", str(binary), "--threads", "1",
                                 "--no-accuracy", *QUICK, "--out", str(tmp_path / "out"), str(bench_build.models[0])])
    assert r.exit_code == 1
    assert "the benchmark binary cannot run on Android device 28031FDH2000AB (ABI arm64-v8a)" in r.output
    assert "android_aarch64_benchmark_model (arm64-v8a)" in r.output
    assert phone.tmp_entries() == []
    r = CliRunner().invoke(cli, ["run", "--target", "adb", "--no-accuracy", str(bench_build.models[0])])
    assert r.exit_code == 1 and "pass --benchmark-binary PATH or set ANDROID_BENCH_BENCHMARK_MODEL" in r.output


def _host_top1(model, bench_build, images=None):
    clf = Classifier(str(model))
    n = images or len(bench_build.y)
    return evaluate(clf, bench_build.x[:n], bench_build.y[:n], bench_build.labels)


def test_adb_run_push_benchmark_parse_report(phone, stand_in, bench_build, tmp_path):
    out = tmp_path / "bench"
    r = CliRunner().invoke(cli, ["run", "--target", "adb", "--benchmark-binary", str(stand_in), "--threads", "1",
                                 *QUICK, "--gpu", "--op-profiling", "--big-cores", "--out", str(out),
                                 str(bench_build.root / "manifest.json")])
    # the stand-in has no GPU delegate: those rows fail, the others are measured
    assert r.exit_code == 1, r.output
    assert f"3 variants failed on adb: dynamic_int8, float32, int8" in r.output
    path = out / "results" / f"adb_{SERIAL}__benchmark_model.json"
    doc = json.loads(path.read_text())
    mask = cpu_mask([max(os.sched_getaffinity(0))])
    assert doc["target"] == f"adb:{SERIAL}" and doc["environment"]["cpu_mask"] == mask
    assert doc["fingerprint"]["hostname"] == "Google Pixel 7"
    assert doc["environment"]["runtime_version"] == "sha256:" + doc["environment"]["benchmark_binary"]["sha256"][:12]
    rows = {(row["variant"], row["delegate"]): row for row in doc["results"]}
    assert sorted(rows) == sorted((v, d) for v in ("float32", "dynamic_int8", "int8") for d in ("xnnpack", "gpu"))
    for variant in ("float32", "dynamic_int8", "int8"):
        row = rows[(variant, "xnnpack")]
        assert row["error"] is None and row["runtime"] == "benchmark_model" and row["threads"] == 1
        assert row["command"].startswith(f"taskset {mask} benchmark_model --graph=/data/local/tmp/android_bench.")
        assert f"/models/{variant}.tflite --num_threads=1 --use_xnnpack=true --warmup_runs=1" in row["command"]
        assert row["latency_statistic"] == "median" and row["runs"] >= 5 and row["p90_ms"] is None
        assert 0 < row["min_ms"] <= row["median_ms"] <= row["benchmark"]["max_us"] / 1000
        assert row["init_ms"] > 0 and row["memory_overall_mb"] is not None
        ops = row["op_profile"]["run_order"]
        assert {o["node_type"] for o in ops} >= {"CONV_2D", "DEPTHWISE_CONV_2D"}
        # accuracy: measured here (the phone has no Python), the same numbers evaluate gives
        expected = _host_top1(bench_build.root / f"{variant}.tflite", bench_build)
        assert row["top1"] == expected.top1 and row["images"] == 200 and row["top1"] > 0.5
        assert row["accuracy_source"] == "host-evaluated"
        gpu = rows[(variant, "gpu")]
        assert "--use_xnnpack=false --use_gpu=true" in gpu["command"]
        assert gpu["error"].startswith("benchmark_model exited 1: ") and "Failed to apply GPU delegate" in gpu["error"]
        assert gpu.get("median_ms") is None   # nothing measured: no number, not a zero
    assert rows[("float32", "xnnpack")]["agreement"] == 1.0
    int8_pred = np.array(doc["predictions"]["int8"])
    f32_pred = np.array(doc["predictions"]["float32"])
    assert rows[("int8", "xnnpack")]["agreement"] == pytest.approx(float(np.mean(int8_pred == f32_pred)))
    assert doc["accuracy"]["where"] == "host-evaluated"
    assert phone.tmp_entries() == []   # the device folder is removed

    r = CliRunner().invoke(cli, ["report", "--out", str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    by = {(row["variant"], row["delegate"]): row for row in report["results"]}
    assert by[("int8", "xnnpack")]["speedup_vs_float32"] == pytest.approx(
        rows[("float32", "xnnpack")]["median_ms"] / rows[("int8", "xnnpack")]["median_ms"])
    md = (out / "report.md").read_text()
    assert f"## adb:{SERIAL}" in md and "Google Pixel 7: GS201, " in md and "Android 14 (SDK 34)" in md
    assert "Python None" not in md
    assert f"| int8 | benchmark_model {doc['environment']['runtime_version']} | 1 |" in md
    assert f"{100 * rows[('int8', 'xnnpack')]['top1']:.2f}% (host-evaluated)" in md
    assert "| float32 | benchmark_model sha256:" in md and ", GPU delegate | 1 |" in md
    assert "failed: benchmark_model exited 1" in md
    assert "### Per-op profile: float32, 1 threads, xnnpack" in md and "| DEPTHWISE_CONV_2D |" in md
    assert 'measured on the host with the same .tflite files' in md


@pytest.mark.slow
def test_adb_run_accuracy_on_the_device_python(phone, stand_in, bench_build, tmp_path, monkeypatch):
    """A phone with a Python that has a TFLite runtime (Termux): the device runner measures top-1 there.
    The stand-in here prints no percentiles, as binaries before them did: median_ms is then the mean."""
    import sys
    monkeypatch.setenv("FAKE_BENCHMARK_PERCENTILES", "0")
    out = tmp_path / "bench"
    r = CliRunner().invoke(cli, ["run", "--target", f"adb:{SERIAL}", "--benchmark-binary", str(stand_in),
                                 "--python", sys.executable, "--threads", "1", "--eval-images", "120", *QUICK,
                                 "--out", str(out), *map(str, bench_build.models)])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "results" / f"adb_{SERIAL}__benchmark_model.json").read_text())
    assert doc["accuracy"]["where"] == "device" and doc["accuracy"]["runtime"] == "ai_edge_litert"
    for row in doc["results"]:
        assert row["accuracy_source"] == "device" and row["images"] == 120
        assert row["top1"] == _host_top1(bench_build.root / row["file"], bench_build, 120).top1
        assert row["latency_statistic"] == "mean" and row["median_ms"] == row["mean_ms"]
    assert phone.tmp_entries() == []
    r = CliRunner().invoke(cli, ["report", "--out", str(out)])
    md = (out / "report.md").read_text()
    assert r.exit_code == 0 and " ms (mean) |" in md and "(host-evaluated)" not in md
    assert "measured on the device by the device runner" in md


def test_killed_benchmark_is_a_failed_row_not_zeros(phone, stand_in, bench_build, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_BENCHMARK_CRASH_AFTER_WARMUP", "1")
    out = tmp_path / "bench"
    r = CliRunner().invoke(cli, ["run", "--target", "adb", "--benchmark-binary", str(stand_in), "--threads", "1",
                                 "--no-accuracy", *QUICK, "--out", str(out), str(bench_build.models[2])])
    assert r.exit_code == 1 and "1 variant failed on adb: int8" in r.output
    (row,) = json.loads((out / "results" / f"adb_{SERIAL}__benchmark_model.json").read_text())["results"]
    assert row["error"].startswith("benchmark_model exited 137") and row.get("median_ms") is None
    assert row["top1"] is None and row["accuracy_source"] is None
    assert phone.tmp_entries() == []
