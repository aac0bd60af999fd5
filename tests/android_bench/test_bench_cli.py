"""python -m android_bench run|report, the configuration, and `make bench`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from android_bench import report
from android_bench.__main__ import cli
from android_bench.config import BenchConfig, ConfigError, Runtime, Xnnpack
from android_bench.device import evaluate, runner
from pipeline import quiet

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--runs", "5", "--min-seconds", "0", "--warmup-runs", "1", "--warmup-seconds", "0"]


def test_config_choices_are_the_device_runners():
    assert [r.value for r in Runtime] == ["auto", *evaluate.RUNTIMES, *runner.APP_RUNTIMES]
    assert sorted(x.value for x in Xnnpack) == sorted(runner.XNNPACK_CHOICES)
    args = BenchConfig(threads=[1, 2, 4], xnnpack="both").runner_args()
    parsed = runner._parser().parse_args(["m.tflite", *args])
    assert parsed.threads == (1, 2, 4) and parsed.xnnpack == "both" and parsed.runs == 50
    with pytest.raises(ConfigError, match=r"threads must be integers >= 1 such as \(1, 2, 4\), got \(0,\)"):
        BenchConfig(threads=(0,))
    with pytest.raises(ConfigError, match="'fast' is not a valid Runtime"):
        BenchConfig(runtime="fast")
    with pytest.raises(ConfigError, match="protocol: runs must be"):
        BenchConfig(protocol={"runs": 0})


def test_cli_run_then_report(bench_build, tmp_path):
    out = tmp_path / "bench"
    r = CliRunner().invoke(cli, ["run", "--target", "local", "--threads", "1", *QUICK, "--out", str(out),
                                 str(bench_build.root / "manifest.json")])
    assert r.exit_code == 0, r.output
    # --runtime auto: the interpreter's invoke(), then MediaPipe's classify() (installed here)
    assert f"wrote {out / 'results' / 'local__ai_edge_litert.json'}" in r.output
    assert f"wrote {out / 'results' / 'local__mediapipe.json'}" in r.output
    assert "int8 threads=1 xnnpack=on: median" in r.output
    r = CliRunner().invoke(cli, ["report", "--out", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "report.json").read_text())
    assert [(row["runtime"], row["variant"]) for row in doc["results"]] == [
        (runtime, v) for runtime in ("ai_edge_litert", "mediapipe") for v in ("float32", "dynamic_int8", "int8")]
    md = (out / "report.md").read_text()
    assert "| int8 | ai_edge_litert 2.3.0 | 1 |" in md and "| int8 | mediapipe 1.2.3 | 1 |" in md
    assert "App-level latency: median of MediaPipe Tasks 1.2.3 `ImageClassifier.classify()`" in md
    invoke = {row["variant"]: row for row in doc["results"] if row["runtime"] == "ai_edge_litert"}
    for row in doc["results"]:
        if row["runtime"] == "mediapipe":
            same = invoke[row["variant"]]
            assert row["invoke_median_ms"] == same["median_ms"] and row["invoke_runtime"] == "ai_edge_litert 2.3.0"
            assert row["app_minus_invoke_ms"] == pytest.approx(row["median_ms"] - same["median_ms"])
            assert abs(row["top1"] - same["top1"]) <= 0.001, (row["variant"], row["top1"], same["top1"])
            assert f"| {row['variant']} | {report.format_ms(row['median_ms'])} | {report.format_ms(same['median_ms'])} |" in md
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_run_skips_mediapipe_where_it_is_not_installed(bench_build, tmp_path):
    hidden = tmp_path / "hide"   # first on PYTHONPATH: `import mediapipe` fails as "not installed"
    (hidden / "mediapipe").mkdir(parents=True)
    (hidden / "mediapipe" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'mediapipe'\", "
                                                      "name='mediapipe')\n")
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={hidden} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    out = tmp_path / "bench"
    r = CliRunner().invoke(cli, ["run", "--target", "local", "--python", str(wrapper), "--threads", "1", *QUICK,
                                 "--out", str(out), str(bench_build.models[0])])
    assert r.exit_code == 0, r.output
    assert "skipped mediapipe on this machine:" in r.output and "pip install mediapipe" in r.output
    assert sorted(p.name for p in (out / "results").iterdir()) == ["local__ai_edge_litert.json"]


def test_cli_errors_are_messages(bench_build, tmp_path):
    r = CliRunner().invoke(cli, ["run", "--target", "pi@host", str(bench_build.models[0])])
    assert r.exit_code == 1 and "target must be 'local', 'ssh://[user@]host[:port]', 'pi-emu', 'chroot://PATH' or 'adb[:SERIAL]', got 'pi@host'" in r.output
    r = CliRunner().invoke(cli, ["run", "--out", str(tmp_path), str(tmp_path / "manifest.json")])
    assert r.exit_code == 1 and "does not exist: export first (make export)" in r.output
    r = CliRunner().invoke(cli, ["report", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "no results in" in r.output


def test_make_bench_runs_the_target_then_the_report(tmp_path):
    r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "-n", "bench", f"OUT={tmp_path}",
                        f"-o{tmp_path}/manifest.json", "TARGET=ssh://pi@raspberrypi", "THREADS=1,2,4"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (f"-m android_bench run --target ssh://pi@raspberrypi --threads 1,2,4 --out {tmp_path}/bench "
            f"{tmp_path}/manifest.json" in " ".join(r.stdout.split()))
    assert f"-m android_bench report --out {tmp_path}/bench" in r.stdout


def test_a_run_in_a_log_says_each_thing_once(bench_build, tmp_path):
    out = tmp_path / "bench"
    r = subprocess.run([sys.executable, "-m", "android_bench", "run", "--threads", "1", "--runs", "3",
                        "--min-seconds", "0", "--warmup-runs", "0", "--warmup-seconds", "0", "--out", str(out),
                        str(bench_build.models[0])], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    both = r.stdout + r.stderr
    wrote = [ln for ln in both.splitlines() if ln.startswith("wrote ")]   # one file per runtime, each said once
    assert len(wrote) == len(set(wrote)) == len(list((out / "results").glob("*.json")))
    assert f"wrote {out / 'results' / 'local__ai_edge_litert.json'}" in wrote
    assert "measuring 1 model on " in r.stderr and "1 models" not in both
    assert "\r" not in both and not [ln for ln in both.splitlines() if quiet.is_banner(ln)]
    assert "[2/2] float32 threads=1 xnnpack=on: median" in r.stderr   # one line per measurement
