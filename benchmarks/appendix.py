"""The README's appendix, measured on this machine: every table, in markdown, on stdout.

    make appendix                                   # all of it: about an hour on 2 cores
    .venv/bin/python benchmarks/appendix.py --out build [--seeds 3] [--no-fresh] [--no-bench] [--no-throughput]

What it runs, in order, each section naming the CPU it was measured on:

* ``fresh``: ``make export`` into a new folder (OUT/appendix/fresh), timed end to end: the
  main job as a fresh clone runs it, with the existing .venv;
* ``seeds``: the default recipe trained with seeds 0..N-1 (OUT/appendix/seed-K; the fresh
  run is seed 0), each run's test top-1, best validation top-1, median epoch time and wall
  time, then the mean, the sample standard deviation and the range;
* ``variants``: ``python -m export table`` of the fresh build: size, top-1 and agreement of
  every variant;
* ``bench``: ``make bench`` on this machine, and the main table of its report.md;
* ``throughput``: ``benchmarks/train_throughput.py``.

Runs already made (a model.json with the same config) are reused, so an interrupted
appendix continues; delete OUT/appendix to measure again. Figures from a busy machine are
marked with the load average seen while they were taken.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT))

from android_bench.device.fingerprint import cpu_model  # noqa: E402


def cpu() -> str:
    return f"{cpu_model() or 'unknown CPU'}, {os.cpu_count()} cores"


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def say(line: str = "") -> None:
    print(line, flush=True)


def run(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` with its output into ``log``; the wall seconds it took. A failure stops the appendix."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"Error: {' '.join(cmd)} exited {code}; its output is in {log}")
    return time.perf_counter() - t0


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def fresh(out: Path) -> Path:
    build = out / "fresh"
    stamp = build / "make-export.seconds"
    if not (build / "manifest.json").exists() or not stamp.exists():
        seconds = run(["make", "--no-print-directory", "export", f"OUT={build}"], out / "fresh.log")
        stamp.write_text(f"{seconds:.1f}\n")
    seconds = float(stamp.read_text())
    record = json.loads((build / "model.json").read_text())
    say(f"### make export, measured {record['created'][:10]} on {record['machine']['cpu']}, "
        f"{record['machine']['cores']} cores")
    say()
    say("| | |")
    say("|---|---|")
    say(f"| `make export` wall time (training, quantization, export, evaluation) | {minutes(seconds)} |")
    say(f"| training wall time, data and test evaluation included | {minutes(record['timing']['total_seconds'])} |")
    say(f"| float32 test top-1 (Keras) | {100 * record['test_top1']:.2f}% |")
    say()
    return build


def seeds(out: Path, n: int, first: Path | None) -> None:
    rows = []
    for seed in range(n):
        folder = first if seed == 0 and first is not None else out / f"seed-{seed}"
        if not (folder / "model.json").exists():
            run([PY, "-m", "train", "fit", "--seed", str(seed), "--out", str(folder)], out / f"seed-{seed}.log")
        rows.append(json.loads((folder / "model.json").read_text()))
    record = rows[0]
    c = record["config"]
    say(f"### The default recipe over {n} seeds ({c['arch']} {c['alpha']} at {c['resolution']} px, "
        f"{c['epochs']} epochs), on {record['machine']['cpu']}, {record['machine']['cores']} cores")
    say()
    say("| seed | test top-1 | best val top-1 (epoch) | median epoch | training wall |")
    say("|---:|---:|---:|---:|---:|")
    for r in rows:
        epoch = statistics.median(h["seconds"] for h in r["history"])
        say(f"| {r['config']['seed']} | {100 * r['test_top1']:.2f}% | {100 * r['val_top1']:.2f}% "
            f"({r['best_epoch']}) | {epoch:.1f} s | {minutes(r['timing']['total_seconds'])} |")
    top1 = [100 * r["test_top1"] for r in rows]
    spread = statistics.stdev(top1) if len(top1) > 1 else 0.0
    say()
    say(f"Test top-1 over {n} seeds: mean {statistics.mean(top1):.2f}%, standard deviation {spread:.2f} "
        f"points, range {min(top1):.2f}% to {max(top1):.2f}%.")
    say()


def variants(build: Path) -> None:
    table = subprocess.run([PY, "-m", "export", "table", str(build / "manifest.json")], cwd=ROOT,
                           capture_output=True, text=True)
    if table.returncode != 0:
        sys.exit(f"Error: export table failed: {table.stderr.strip()}")
    say(f"### The variants of that build ({cpu()})")
    say()
    say(table.stdout.rstrip())
    say()


def bench(out: Path, build: Path) -> None:
    seen = load()
    run(["make", "--no-print-directory", "bench", f"OUT={build}"], out / "bench.log")
    report = (build / "bench" / "report.md").read_text()
    say(f"### Latency on this machine ({cpu()}; {seen} before the run)")
    say()
    say(report.strip())
    say()


def throughput(out: Path) -> None:
    seen = load()
    log = out / "throughput.log"
    run([PY, str(ROOT / "benchmarks" / "train_throughput.py")], log)
    say(f"### Training throughput ({cpu()}; {seen} before the run)")
    say()
    say("```")
    say(log.read_text().strip())
    say("```")
    say()


def main(argv: list[str]) -> None:
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("build"), help="the appendix builds in OUT/appendix")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the default recipe (0: none)")
    p.add_argument("--no-fresh", action="store_true", help="skip the timed make export (and so variants, bench)")
    p.add_argument("--no-bench", action="store_true")
    p.add_argument("--no-throughput", action="store_true")
    args = p.parse_args(argv)
    if args.seeds < 0:
        p.error("--seeds must be 0 or more")
    out = (args.out / "appendix").resolve()
    out.mkdir(parents=True, exist_ok=True)
    say(f"## Appendix: measured on {time.strftime('%Y-%m-%d')}, {cpu()}")
    say()
    build = None if args.no_fresh else fresh(out)
    if args.seeds:
        seeds(out, args.seeds, build)
    if build is not None:
        variants(build)
        if not args.no_bench:
            bench(out, build)
    if not args.no_throughput:
        throughput(out)


if __name__ == "__main__":
    main(sys.argv[1:])
