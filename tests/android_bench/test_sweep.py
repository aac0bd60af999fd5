"""python -m android_bench sweep: the grid file, the Pareto front, and a two-configuration sweep
on tiny data that is interrupted, resumed, reused and partly redone."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from android_bench.__main__ import cli
from android_bench.sweep import grid
from android_bench.sweep.report import pareto_front
from tests.quantize import tiny

ROOT = Path(__file__).resolve().parents[2]


# --- the Pareto front -----------------------------------------------------------------------

def test_pareto_front_keeps_only_the_undominated():
    # (latency ms, top-1): a trade-off curve plus points behind it
    points = [(1.0, 0.80), (2.0, 0.85), (1.5, 0.79), (4.0, 0.90), (3.0, 0.84), (5.0, 0.90)]
    assert pareto_front(points) == [True, True, False, True, False, False]


def test_pareto_front_one_point_dominating_all():
    assert pareto_front([(3.0, 0.7), (1.0, 0.9), (2.0, 0.9), (1.0, 0.8)]) == [False, True, False, False]


def test_pareto_front_ties_and_duplicates():
    # equally fast: the more accurate wins; equally accurate: the faster wins
    assert pareto_front([(1.0, 0.5), (1.0, 0.7)]) == [False, True]
    assert pareto_front([(2.0, 0.7), (1.0, 0.7)]) == [False, True]
    # identical points do not dominate each other: both stay, and both beat a worse one
    assert pareto_front([(1.0, 0.7), (1.0, 0.7), (1.5, 0.6)]) == [True, True, False]
    assert pareto_front([(1.0, 0.7)]) == [True]
    assert pareto_front([]) == []


def test_pareto_front_refuses_a_missing_value():
    with pytest.raises(ValueError, match="a Pareto point has no value"):
        pareto_front([(1.0, 0.5), (float("nan"), 0.7)])


def test_front_is_per_thread_count_and_skips_failures(tmp_path):
    from android_bench.sweep import report

    def row(config, variant, threads, ms, top1, error=None):
        return {"config": config, "name": config, "arch": config[:2], "alpha": 0.5, "resolution": 32,
                "variant": variant, "threads": threads, "xnnpack": True, "params": 1000, "macs": 2_000_000,
                "size_bytes": 4096, "median_ms": ms, "top1": top1, "error": error}
    rows = [row("v1-a", "float32", 1, 2.0, 0.90), row("v1-a", "int8", 1, 1.0, 0.89),
            row("v2-b", "float32", 1, 2.5, 0.88), row("v2-b", "int8", 1, None, None, error="int8: crashed"),
            row("v1-a", "float32", 2, 1.5, 0.90), row("v2-b", "float32", 2, 1.2, 0.88)]
    emulated = [dict(row("v1-a", "float32", 1, 70.0, 0.90), target="pi-emu", emulation="qemu-aarch64"),
                dict(row("v1-a", "int8", 1, 31.0, 0.89), target="pi-emu", emulation="qemu-aarch64")]
    report.mark_front(emulated)
    assert [r["pareto"] for r in emulated] == [None, None]   # qemu's latencies: no front
    assert "| v1-a | v1 | 0.5 | 32 | int8 | 1 | 1k | 2.00M | 4.0 KiB | 31.0 ms | 89.00% | n/a (emulated) |" in \
        report.markdown({"sweep": {"source": "g.toml", "target": "pi-emu", "train": {}, "quantize": {"variants": []}},
                         "results": emulated})
    report.mark_front(rows)
    assert [r["pareto"] for r in rows] == [True, True, False, None, True, True]
    doc = {"sweep": {"source": "g.toml", "target": "local", "train": {"epochs": 3},
                     "quantize": {"variants": ["float32", "int8"]}}, "results": rows}
    md = report.markdown(doc)
    assert "| v2-b | v2 | 0.5 | 32 | int8 | 1 | - | - | - | failed: int8: crashed | - | - |" in md
    assert "| v1-a | v1 | 0.5 | 32 | int8 | 1 | 1k | 2.00M | 4.0 KiB | 1.00 ms | 89.00% | **front** |" in md
    assert "Every configuration: epochs=3; variants float32, int8." in md
    report.plot(rows, tmp_path / "report.png")
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


# --- the grid file --------------------------------------------------------------------------

def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def test_default_grid_is_three_generations_by_two_alphas_by_two_resolutions():
    config = grid.load(ROOT / "sweep.toml")
    configs = config.configurations()
    assert [(c.train.arch.value, c.train.alpha, c.train.resolution) for c in configs] == [
        (a, al, r) for a in ("v1", "v2", "v3-small", "v3-large") for al in (0.35, 0.5) for r in (32, 48)]
    assert {c.train.epochs for c in configs} == {3}
    assert [v.value for v in config.quantize.variants] == ["float32", "int8"]
    assert config.target == "local" and config.bench.threads == (1,)
    ids = [c.id for c in configs]
    assert len(set(ids)) == 16 and ids[0].startswith("v1-a0.35-r32-")
    assert ids[8].startswith("v3_small-a0.35-r32-") and ids[-1].startswith("v3_large-a0.5-r48-")
    # V1 and V2 keep the folders they had before V3 existed (minimalistic is recorded only when set).
    assert ids[:8] == [c.id for c in grid.parse({"grid": {"arch": ["v1", "v2"], "alpha": [0.35, 0.5],
                                                           "resolution": [32, 48]},
                                                 "train": {"epochs": 3}}).configurations()]


def test_minimalistic_in_the_grid(tmp_path):
    config = grid.load(write(tmp_path, """
[grid]
arch = ["v3-small", "v3-large"]
minimalistic = [false, true]
[train]
epochs = 2
"""))
    configs = config.configurations()
    assert [(c.train.arch.value, c.train.minimalistic) for c in configs] == [
        ("v3-small", False), ("v3-small", True), ("v3-large", False), ("v3-large", True)]
    assert configs[1].name == "v3_small-minTrue"
    with pytest.raises(grid.GridError, match="minimalistic .* is a MobileNet V3 variant"):
        grid.load(write(tmp_path, '[grid]\narch = ["v1", "v3-small"]\n[train]\nminimalistic = true\n'))


def test_grid_values_and_ids(tmp_path):
    config = grid.load(write(tmp_path, """
[grid]
alpha = [1, 0.5]
[train]
arch = "v2"
epochs = 2
[quantize]
variants = "int8,float32"
[bench]
target = "ssh://pi@raspberrypi"
threads = "1,2"
runs = 7
"""))
    a, b = config.configurations()
    assert a.train.alpha == 1.0 and isinstance(a.train.alpha, float) and a.train.arch.value == "v2"
    assert a.id == grid.Configuration(a.train.replace(alpha=1.0), (("alpha", 1.0),)).id   # 1 and 1.0: one model
    assert a.id.startswith("a1-") and b.id.startswith("a0.5-") and a.label == "alpha=1"
    assert [v.value for v in config.quantize.variants] == ["float32", "int8"]
    assert config.bench.threads == (1, 2) and config.bench.protocol.runs == 7
    assert config.target == "ssh://pi@raspberrypi"


@pytest.mark.parametrize("text, message", [
    ("[grid]\narch = ['v1']\n[train]\nepoch = 3\n", "unknown key 'epoch' in [train]; known: arch, alpha"),
    ("[grid]\narch = ['v1']\n[trian]\nepochs = 3\n", "unknown section [trian]; known: [grid], [train]"),
    ("[grid]\narch = ['v1', 'v3']\n", "[grid] arch: 'v3' is not one of v1, v2"),
    ("[grid]\narch = 'v1'\n", "[grid] arch must be a non-empty list such as arch = [\"v1\", \"v2\"], got 'v1'"),
    ("[grid]\nalpha = []\n", "[grid] alpha must be a non-empty list"),
    ("[grid]\nalpha = [0.5, 0.5]\n", "[grid] alpha lists a value twice"),
    ("[grid]\nwidth = [0.5]\n", "unknown key 'width' in [grid]; it takes lists of the training settings arch"),
    ("[grid]\nalpha = [0.5, 5]\n", "the configuration alpha=5 is not valid: alpha must be in (0, 4], got 5.0"),
    ("[grid]\nalpha = [0.5]\n[train]\nalpha = 0.35\n", "alpha is in both [grid] and [train]; keep it in one"),
    ("[train]\nepochs = 3\n", "[grid] is empty"),
    ("[grid]\narch = ['v1']\n[quantize]\nvariants = 'float32,int4'\n", "[quantize]: 'int4' is not a valid Variant"),
    ("[grid]\narch = ['v1']\n[bench]\nthreads = [0]\n", "[bench]: threads must be integers >= 1"),
    ("[grid]\narch = ['v1']\n[bench]\nthreads = 'one'\n", "[bench]: threads must be integers such as [1, 2, 4]"),
    ("[grid]\narch = ['v1']\n[bench]\nruns = 0\n", "[bench]: runs must be an integer >= 1"),
    ("[grid]\narch = ['v1']\n[bench]\nrepeat = 3\n", "unknown key 'repeat' in [bench]; known: target, python"),
    ("[grid]\narch = ['v1']\n[export]\neval_size = 0\n", "[export]: eval_size must be an integer >= 1"),
    ("[grid]\narch = ['v1'\n", "is not valid TOML"),
])
def test_grid_errors_name_the_file_section_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(grid.GridError) as e:
        grid.load(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_cli_grid_errors_are_messages(tmp_path):
    r = CliRunner().invoke(cli, ["sweep", str(tmp_path / "none.toml"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and "grid file" in r.output and "does not exist" in r.output
    path = write(tmp_path, "[grid]\narch = ['v1', 'v3']\n")
    r = CliRunner().invoke(cli, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and "[grid] arch: 'v3' is not one of v1, v2" in r.output
    r = CliRunner().invoke(cli, ["sweep", str(ROOT / "sweep.toml"), "--target", "pi@host",
                                 "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and "got 'pi@host'" in r.output
    path = write(tmp_path, f"[grid]\narch = ['v1']\n[train]\ndata = '{tmp_path / 'nothing'}'\n")
    r = CliRunner().invoke(cli, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and f"data dir '{tmp_path / 'nothing'}' does not exist" in r.output
    assert not (tmp_path / "out").exists()   # nothing trained or written


def test_make_sweep_passes_the_grid_and_the_knobs(tmp_path):
    stamp = tmp_path / "stamp"
    stamp.touch()
    base = ["make", "--no-print-directory", "-C", str(ROOT), "-n", "sweep", f"OUT={tmp_path}", f"STAMP={stamp}"]
    r = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert " ".join(r.stdout.split()).endswith(f"-m android_bench sweep sweep.toml --out {tmp_path}/sweep")
    r = subprocess.run(base + ["SWEEP=g.toml", "TARGET=ssh://pi@raspberrypi", "THREADS=1,4"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (f"-m android_bench sweep g.toml --out {tmp_path}/sweep --target ssh://pi@raspberrypi --threads 1,4"
            in " ".join(r.stdout.split()))


# --- a real sweep on tiny data --------------------------------------------------------------

EPOCHS = 4
TINY_GRID = """
[grid]
arch = ["v1", "v2", "v3-small"]   # three generations

[train]                      # a tiny model on the blob task; BatchNorm statistics settle in ~30 steps
alpha = 0.25
resolution = 16
epochs = {epochs}
batch_size = 32
bn_momentum = 0.5
augment = false
data = "{data}"

[quantize]
variants = ["float32", "int8"]
calibration_size = 16

[bench]
threads = [1]
runs = 5
min_seconds = 0
warmup_runs = 1
warmup_seconds = 0
"""


def _sweep(grid_path: Path, out: Path, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "android_bench", "sweep", str(grid_path), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _interrupt_during_training(grid_path: Path, out: Path, folder: Path) -> subprocess.CompletedProcess:
    """Start the sweep, Ctrl-C it once the first configuration finished an epoch but not all."""
    proc = subprocess.Popen([sys.executable, "-m", "android_bench", "sweep", str(grid_path), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = folder / "train" / "state.json"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if json.loads(state.read_text())["epochs_done"] >= 1:
                    proc.send_signal(signal.SIGINT)
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _mtimes(paths):
    return {p: p.stat().st_mtime_ns for p in paths}


def _dominated(r, rows):
    return any(o["median_ms"] <= r["median_ms"] and o["top1"] >= r["top1"]
               and (o["median_ms"] < r["median_ms"] or o["top1"] > r["top1"]) for o in rows)


@pytest.mark.slow
def test_sweep_three_generations_resume_reuse_and_redo(tmp_path):
    data = tiny.blob_folder(tmp_path / "imgs", per_class=80, resolution=32)
    grid_path = write(tmp_path, TINY_GRID.format(epochs=EPOCHS, data=data))
    out = tmp_path / "sweep"
    v1, v2, v3 = grid.load(grid_path).configurations()
    f1, f2, f3 = out / v1.id, out / v2.id, out / v3.id

    # 1. Interrupted in the middle of the first configuration's training.
    r = _interrupt_during_training(grid_path, out, f1)
    assert r.returncode == 130, r.stderr[-3000:]
    assert "interrupted; the finished stages are kept" in r.stderr
    assert not (f1 / "done" / "train.json").exists() and not (out / "report.json").exists()
    epochs_before = json.loads((f1 / "train" / "state.json").read_text())["epochs_done"]
    assert 1 <= epochs_before < EPOCHS

    # 2. The same command again: training continues from the last finished epoch, then the rest.
    r = _sweep(grid_path, out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"resuming the interrupted training after epoch {epochs_before} of {EPOCHS}" in r.stderr
    history = json.loads((f1 / "train" / "state.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))   # no epoch trained twice
    assert f"[2/3] {v2.id}: train ..." in r.stderr and f"[3/3] {v3.id}: train ..." in r.stderr

    doc = json.loads((out / "report.json").read_text())
    rows = doc["results"]
    assert [(row["config"], row["variant"]) for row in rows] == [
        (v1.id, "float32"), (v1.id, "int8"), (v2.id, "float32"), (v2.id, "int8"),
        (v3.id, "float32"), (v3.id, "int8")]
    assert [row["arch"] for row in rows[::2]] == ["v1", "v2", "v3-small"]
    for row in rows:
        folder = out / row["config"]
        model = json.loads((folder / "model.json").read_text())
        assert row["error"] is None and row["threads"] == 1 and row["runtime"] == "ai_edge_litert"
        assert row["median_ms"] > 0 and row["p90_ms"] >= row["median_ms"]
        assert row["images"] == json.loads((folder / "manifest.json").read_text())["eval_pack"]["images"] > 0
        assert row["size_bytes"] == (folder / f"{row['variant']}.tflite").stat().st_size
        assert (row["params"], row["macs"]) == (model["model"]["params"], model["model"]["macs"])
        # the same file, images and runtime as export's measurement: the same top-1, to the image
        assert row["images"] == json.loads((folder / "manifest.json").read_text())["evaluation"]["images"]
        assert row["top1"] == row["host_top1"], row
        if row["variant"] == "float32":
            assert row["top1"] > 0.6, row   # the blob task is learned (chance: 0.25)
    assert len({row["params"] for row in rows}) == 3   # three different models
    for row in rows:   # the front agrees with the numbers
        assert row["pareto"] is (not _dominated(row, rows)), rows
    assert any(row["pareto"] for row in rows)
    md = (out / "report.md").read_text()
    for row in rows:
        assert f"| {row['config']} | {row['arch']} | 0.25 | 16 | {row['variant']} | 1 |" in md
    assert md.count("**front**") == sum(row["pareto"] for row in rows)
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"

    # 3. Unchanged inputs: nothing is redone.
    kept = [f / name for f in (f1, f2, f3) for name in ("model.keras", "quantize/quantize.json", "manifest.json",
                                                    "done/train.json", "done/quantize.json", "done/export.json",
                                                    "done/bench.json")]
    kept += [f / json.loads((f / "done/bench.json").read_text())["results"] for f in (f1, f2, f3)]
    before = _mtimes(kept)
    r = _sweep(grid_path, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _mtimes(kept) == before
    assert r.stderr.count(" cached") == 12 and " ..." not in r.stderr
    doc = json.loads((out / "report.json").read_text())
    assert [c["ran"] for c in doc["configurations"]] == [[], [], []]
    assert [row["median_ms"] for row in doc["results"]] == [row["median_ms"] for row in rows]

    # 4. A stage interrupted before its marker was written: only it and the stages after it rerun.
    (f2 / "done" / "export.json").unlink()
    r = _sweep(grid_path, out)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / "report.json").read_text())
    assert [(c["ran"], c["cached"]) for c in doc["configurations"]] == [
        ([], ["train", "quantize", "export", "bench"]), (["export", "bench"], ["train", "quantize"]),
        ([], ["train", "quantize", "export", "bench"])]
    after = _mtimes(kept)
    assert {p for p in kept if after[p] != before[p]} == {
        f2 / "manifest.json", f2 / "done/export.json", f2 / "done/bench.json",
        f2 / json.loads((f2 / "done/bench.json").read_text())["results"]}
    assert not list(out.rglob("*.partial*"))
