"""Class 4 of issue 13: failures of the machine and impossible input are one line, not a traceback.

A full disk (a small tmpfs, filled) and a read-only file system under quantize, export and
android_bench run/report/sweep: one 'Error:' line naming the path and the reason, no temporary
file left, the previous complete set intact. The parser refuses impossible timings and quotes
at most 200 characters of a 50 MB line. Mounting needs root; elsewhere those tests skip.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.android_bench.test_benchmark_model_parser import CURRENT
from tests.robustness.conftest import cli, export_args, no_leftovers, one_error, published, quantize_args
from tests.train import procs
from tests.train.test_checkpoint import tmpfs

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"),
                                reason="mounting a small tmpfs needs root and mount(8)")
QUICK = ("--runs", "1", "--min-seconds", "0", "--warmup-runs", "0", "--warmup-seconds", "0", "--threads", "1",
         "--runtime", "ai_edge_litert", "--no-accuracy")


@pytest.mark.parametrize("old, new, says", [
    ("min=21093", "min=-5", "impossible min"),
    ("avg=21678.2", "avg=nan", "impossible avg"),
    ("Inference (avg): 21678.2", "Inference (avg): -0.005", "impossible avg_us"),
    ("Init: 34617", "Init: inf", "impossible init_us"),
])
def test_parse_refuses_impossible_timings(tmp_path, old, new, says):
    assert old in CURRENT
    log = tmp_path / "run.log"
    log.write_text(CURRENT.replace(old, new))
    line = one_error(*cli("android_bench", "parse", log), str(log), says, "a finite number >= 0")
    assert len(line) < 600
    log.write_text(CURRENT)
    code, text = cli("android_bench", "parse", log)
    assert code == 0 and "Traceback" not in text, text


def test_parse_quotes_at_most_200_characters_of_a_50_mb_line(tmp_path):
    log = tmp_path / "one-line.log"
    with open(log, "w") as f:
        f.write("count=50 first=1 min=1 max=2 avg=1 std=0 " + "x" * (50 << 20))
    code, text = cli("android_bench", "parse", log)
    line = one_error(code, text, "(cut off?)", "characters)")
    assert len(text) < 1000 and line.count("x") <= 200
    log.write_text("y" * (50 << 20))
    code, text = cli("android_bench", "parse", log)
    one_error(code, text, "this is not benchmark_model output")
    assert len(text) < 1000


@pytest.mark.slow
@needs_root
def test_a_full_disk_keeps_the_old_set_and_leaves_no_temporary_file(built, tmp_path):
    with tmpfs(tmp_path / "small", "size=5m") as small:
        out = shutil.copytree(built.base, small / "build")   # 4.2 MB of 5: no room for a new set
        old, old_quantized = published(out, "manifest.json"), published(out / "quantize", "quantize.json")
        r = procs.run(export_args(out, built.data, "--license", "Other-1.0"))
        one_error(r.returncode, r.stdout + r.stderr, f"'{out}'", "No space left on device")
        r = procs.run(quantize_args(built.model_b, out))
        one_error(r.returncode, r.stdout + r.stderr, "No space left on device")
        assert published(out, "manifest.json") == old
        assert published(out / "quantize", "quantize.json") == old_quantized
        no_leftovers(out, out / "quantize")
        subprocess.run(["dd", "if=/dev/zero", f"of={small / 'fill'}", "bs=64k"], capture_output=True)
        code, text = cli("android_bench", "run", *QUICK, "--out", out / "bench", out / "manifest.json")
        one_error(code, text, str(out / "bench"), "No space left on device")
        assert not [p for p in (out / "bench").rglob("*") if p.is_file()]


@pytest.mark.slow
@needs_root
def test_a_read_only_file_system_is_one_line_per_cli(built, tmp_path):
    with tmpfs(tmp_path / "ro", "size=16m") as ro:
        out = shutil.copytree(built.base, ro / "build")
        code, text = cli("android_bench", "run", *QUICK, "--out", out / "bench", out / "manifest.json")
        assert code == 0, text
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        lock = f"cannot write '{out / '.lock'}': Read-only file system"
        one_error(*cli("export", "run", "--out", out, "--data", built.data), lock)
        r = procs.run(quantize_args(built.model_b, out))
        one_error(r.returncode, r.stdout + r.stderr, lock)
        one_error(*cli("android_bench", "run", *QUICK, "--out", out / "bench", out / "manifest.json"),
                  str(out / "bench"), "Read-only file system")
        one_error(*cli("android_bench", "report", "--out", out / "bench"), str(out / "bench"),
                  "Read-only file system")
        grid = tmp_path / "grid.toml"
        grid.write_text(f'[grid]\nalpha = [0.25]\n[train]\narch = "v1"\nresolution = 32\nchannels = 1\nepochs = 1\n'
                        f'data = "{built.data}"\n[quantize]\nvariants = ["float32"]\n')
        one_error(*cli("android_bench", "sweep", grid, "--out", ro / "sweep"), str(ro / "sweep"),
                  "Read-only file system")
        assert published(out, "manifest.json")
