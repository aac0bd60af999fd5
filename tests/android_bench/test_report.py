"""report.json, report.md and report.png from results files of two targets."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from android_bench import report

FP = {"hostname": "pi4", "arch": "aarch64", "cpu": "Raspberry Pi 4 Model B Rev 1.4", "cores": 4,
      "os": "Debian GNU/Linux 12 (bookworm)", "python": "3.11.2", "numpy": "1.24.2", "runtime": "tflite_runtime",
      "runtime_version": "2.14.0", "governor": "ondemand", "temperature_c": {"cpu-thermal": 51.1},
      "vcgencmd": {"temp": "51.1'C", "throttled": "0x0"}}


def _row(variant, threads, median, top1, agreement, size, error=None, runtime="tflite_runtime"):
    return {"variant": variant, "file": f"{variant}.tflite", "threads": threads, "xnnpack": True,
            "runtime": runtime, "runtime_version": "2.14.0" if runtime == "tflite_runtime" else "2.3.0",
            "median_ms": None if error else median, "p90_ms": None if error else median * 1.1,
            "top1": None if error else top1, "agreement": None if error else agreement, "size_bytes": size,
            "images": 200, "error": error}


def _write(folder, name, target, rows, fp=FP):
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": 1, "target": target, "finished": "2026-11-28T12:00:00+0000", "fingerprint": fp,
           "protocol": {"warmup_runs": 5, "warmup_seconds": 0.5, "runs": 50, "min_seconds": 2.0},
           "results": [dict(r, target=target) for r in rows]}
    (folder / name).write_text(json.dumps(doc))


@pytest.fixture
def results(tmp_path):
    pi = "ssh://pi@pi4"
    _write(tmp_path / "results", "ssh_pi@pi4__tflite_runtime.json", pi, [
        _row("float32", 1, 8.0, 0.90, 1.0, 2_000_000), _row("int8", 1, 2.0, 0.89, 0.97, 600_000),
        _row("float32", 4, 4.0, 0.90, 1.0, 2_000_000), _row("int8", 4, 1.0, 0.89, 0.97, 600_000),
        _row("int16x8", 1, 0, 0, 0, 650_000, error="ValueError: Didn't find op for builtin opcode 'CONV_2D' "
                                                    "version '7' | An older version of this builtin...")])
    _write(tmp_path / "results", "local__ai_edge_litert.json", "local", [
        _row("int8", 1, 0.5, 0.895, 0.98, 600_000, runtime="ai_edge_litert"),
        _row("float32", 1, 1.5, 0.90, 1.0, 2_000_000, runtime="ai_edge_litert")],
        fp=dict(FP, hostname="box", cpu="AMD EPYC", arch="x86_64", cores=2))
    return tmp_path


def test_report_merges_every_results_file(results):
    doc = report.write(results)
    on_disk = json.loads((results / "report.json").read_text())
    assert on_disk["results"] == doc["results"] and len(doc["sources"]) == 2
    rows = doc["results"]
    required = {"target", "variant", "runtime", "runtime_version", "threads", "median_ms", "p90_ms", "top1",
                "agreement", "size_bytes", "fingerprint", "error"}
    assert all(required <= set(r) for r in rows)
    by = {(r["target"], r["variant"], r["threads"]): r for r in rows}
    assert by[("ssh://pi@pi4", "int8", 1)]["speedup_vs_float32"] == pytest.approx(4.0)
    assert by[("ssh://pi@pi4", "int8", 4)]["speedup_vs_float32"] == pytest.approx(4.0)   # same threads only
    assert by[("ssh://pi@pi4", "int8", 1)]["top1_vs_float32"] == pytest.approx(-0.01)
    assert by[("local", "int8", 1)]["speedup_vs_float32"] == pytest.approx(3.0)
    assert by[("local", "int8", 1)]["fingerprint"]["cpu"] == "AMD EPYC"
    assert by[("ssh://pi@pi4", "int16x8", 1)]["error"].startswith("ValueError: Didn't find op")
    assert by[("ssh://pi@pi4", "int16x8", 1)]["speedup_vs_float32"] is None
    # the variant order of export, float32 first, within each target and thread count
    assert [r["variant"] for r in rows if r["target"] == "local"] == ["float32", "int8"]

    md = (results / "report.md").read_text()
    sections = re.split(r"^## ", md, flags=re.M)[1:]
    assert [s.splitlines()[0] for s in sections] == ["local", "ssh://pi@pi4"]
    assert "Raspberry Pi 4 Model B Rev 1.4, 4 cores" in sections[1] and "throttled=0x0" in sections[1]
    table = [ln for ln in sections[1].splitlines() if ln.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == ["variant", "runtime", "threads", "size", "median", "p90", "speedup vs float32", "top-1",
                      "Δ top-1 vs float32", "agreement"]
    cells = {(c[0], c[2]): c for c in ([x.strip() for x in ln.strip("|").split("|")] for ln in table[2:])}
    assert cells[("int8", "1")] == ["int8", "tflite_runtime 2.14.0", "1", "585.9 KiB", "2.00 ms", "2.20 ms",
                                    "4.00x", "89.00%", "-1.00 pt", "97.00%"]
    assert cells[("float32", "4")][4:7] == ["4.00 ms", "4.40 ms", "1.00x"]
    assert cells[("int16x8", "1")][4].startswith("failed: ValueError: Didn't find op")

    png = (results / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    labels = sorted(report.series(rows))
    assert labels == ["local · ai_edge_litert 2.3.0 · 1 thread", "ssh://pi@pi4 · tflite_runtime 2.14.0 · 1 thread"]
    assert not list(results.glob("*.partial*"))


def test_report_without_results_says_what_to_do(tmp_path):
    with pytest.raises(report.ReportError, match="no results in .*: run `python -m android_bench run`"):
        report.write(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text("{}")
    with pytest.raises(report.ReportError, match="is not a results file"):
        report.write(tmp_path)


def _emulated_results(folder):
    """pi-emu's tflite-runtime results (qemu: float32 70 ms, int8 31 ms) and the host's with
    ai-edge-litert only, on the same model files and eval pack, with per-image predictions."""
    rng = np.random.default_rng(0)
    labels = [int(v) for v in rng.integers(0, 4, 200)]
    host_pred = {"float32": list(labels), "int8": [(v + 1) % 4 if i < 6 else v for i, v in enumerate(labels)]}
    pi_pred = {"float32": list(labels), "int8": [(v + 1) % 4 if i < 8 else v for i, v in enumerate(labels)]}
    pack = {"path": "build/eval_pack.npz", "sha256": "e" * 64}

    def doc(target, runtime, version, medians, predictions, emulation=None):
        rows = []
        for variant, median in medians.items():
            row = _row(variant, 1, median, 0.9, 1.0, 600_000, runtime=runtime)
            row.update(runtime_version=version, sha256=variant[0] * 64,
                       samples_ms=list(median * rng.lognormal(0, 0.05, 60)))
            rows.append(row)
        return {"format": 1, "target": target, "finished": "2026-11-28T12:00:00+0000", "fingerprint": FP,
                "protocol": {"runs": 50}, "emulation": emulation, "host": {"eval_pack": pack},
                "environment": {"runtime": runtime, "runtime_version": version},
                "results": [dict(r, target=target) for r in rows], "predictions": predictions,
                "eval_labels": labels}
    (folder / "results").mkdir(parents=True)
    qemu = "qemu-aarch64 version 7.2, user-mode emulation of a cortex-a72 CPU (aarch64) on x86_64"
    docs = {"pi-emu__tflite_runtime.json": doc("pi-emu", "tflite_runtime", "2.14.0",
                                               {"float32": 70.0, "int8": 31.0}, pi_pred, qemu),
            "local__ai_edge_litert.json": doc("local", "ai_edge_litert", "2.3.0",
                                              {"float32": 0.145, "int8": 0.054}, host_pred)}
    for name, d in docs.items():
        (folder / "results" / name).write_text(json.dumps(d))


def test_emulated_rows_get_no_speed_verdict_and_a_labelled_host_comparison(tmp_path):
    _emulated_results(tmp_path)
    rows = {(r["target"], r["variant"]): r for r in report.write(tmp_path)["results"]}
    pi, host = rows[("pi-emu", "int8")], rows[("local", "int8")]
    assert pi["emulation"] and pi["speedup_vs_float32"] is None      # 70 / 31 is qemu's ratio, not a Pi's
    assert pi["speedup_ci"] is None and pi["latency_diff_ms"] is None and pi["within_noise"]["latency"] is None
    assert pi["mcnemar_p"] is not None                                 # accuracy is real on the target
    assert host["speedup_vs_float32"] == pytest.approx(0.145 / 0.054) and host["speedup_ci"] is not None
    # the host has no tflite-runtime result: compared with ai-edge-litert's, and said so
    assert pi["host_runtime"] == "ai_edge_litert 2.3.0" and pi["agreement_with_host_same_runtime"] is False
    assert pi["agreement_with_host"] == pytest.approx(1 - 2 / 200)    # images 6 and 7 differ
    md = (tmp_path / "report.md").read_text()
    section = md[md.index("## pi-emu"):]
    main = next(ln for ln in section.splitlines() if ln.startswith("| int8 | tflite_runtime"))
    assert "n/a (emulated)" in main and "2.26x" not in main and "(emulated)" in main
    assert "ai_edge_litert 2.3.0 (another runtime: not only the CPU differs)" in section
    assert "For like with like, measure the host with tflite_runtime too" in section
    assert "emulated: not compared" in section and "latency (tflite_runtime 2.14.0" not in section
