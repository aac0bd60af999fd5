"""This runner's median latency against the benchmark script ai-edge-litert ships, in one run.

    .venv/bin/python benchmarks/runner_fidelity.py build/int8.tflite [--threads 1] [--runs 200]

Same model, same thread count, same number of warm-up and timed runs, each
side in its own fresh process, interleaved ``--repeats`` times (A B A B ...)
so that a drift of the machine (clock, temperature, a neighbour) hits both:

* runner: ``python -m android_bench.device.runner`` -- ``Interpreter`` with the
  default XNNPACK delegate, batch 1, the timed region ``invoke()`` alone;
* reference: ``python -m ai_edge_litert.tools.benchmark_litert_model`` -- the
  ``CompiledModel`` API on the CPU accelerator, random input, the timed region
  ``run_by_name(signature, input_buffers, output_buffers)``.

Prints both medians per repeat, the median of each over the repeats, their
ratio (runner / reference) and difference. The aim is within 5%. Where they
differ, it is by a few µs whatever the model: the reference's timed call goes
through ``run_by_name`` (a dict of TensorBuffers, a signature lookup) where
the runner's is a bare ``invoke()``; that is 1% of a 0.15 ms model and 5% of
a 0.05 ms one.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402

REFERENCE = "ai_edge_litert.tools.benchmark_litert_model"
# The reference script rounds its JSON and its printout to 0.01 ms, which is +-10% on a 0.05 ms
# model. Its own run_benchmark() is run unchanged, with only that final rounding turned off.
UNROUNDED = (f"import json, sys; import {REFERENCE} as b; b.round = lambda v, n=None: v; "
             f"sys.argv = ['benchmark_litert_model'] + sys.argv[1:]; "
             f"print('RESULT ' + json.dumps(b.run_benchmark(b.parse_args())))")


def _runner(model: str, threads: int, runs: int, warmup: int, out: Path) -> float:
    r = subprocess.run([sys.executable, "-m", "android_bench.device.runner", model, "--threads", str(threads),
                        "--runs", str(runs), "--min-seconds", "0", "--warmup-runs", str(warmup),
                        "--warmup-seconds", "0", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"error: the runner failed: {r.stderr[-1500:]}")
    row = json.loads(out.read_text())["results"][0]
    return row["median_ms"]


def _reference(model: str, threads: int, runs: int, warmup: int) -> float:
    r = subprocess.run([sys.executable, "-c", UNROUNDED, f"--model={model}", f"--num_threads={threads}",
                        f"--num_runs={runs}", f"--warmup_runs={warmup}"], capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        sys.exit(f"error: {REFERENCE} failed (exit {r.returncode}): {(r.stdout + r.stderr)[-1500:]}")
    return json.loads(lines[-1][len("RESULT "):])["latency"]["median_ms"]


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, exists=True))
@click.option("--threads", default=1, show_default=True)
@click.option("--runs", default=200, show_default=True, help="timed runs on each side")
@click.option("--warmup", default=20, show_default=True, help="warm-up runs on each side")
@click.option("--repeats", default=3, show_default=True, help="interleaved runs of both sides")
def main(model, threads, runs, warmup, repeats):
    import importlib.util
    if importlib.util.find_spec(REFERENCE) is None:
        sys.exit(f"error: {REFERENCE} is not in this ai-edge-litert (the 2.x wheels ship it): pip install "
                 f"ai-edge-litert")
    import ai_edge_litert
    model = str(Path(model).resolve())
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            ours.append(_runner(model, threads, runs, warmup, Path(tmp) / f"runner{i}.json"))
            theirs.append(_reference(model, threads, runs, warmup))
            print(f"repeat {i + 1}: runner {ours[-1]:8.3f} ms   benchmark_litert_model {theirs[-1]:8.3f} ms")
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"median  : runner {a:8.3f} ms   benchmark_litert_model {b:8.3f} ms   ratio {a / b:.3f}, "
          f"difference {1000 * (a - b):+.1f} µs  ({Path(model).name}, {threads} thread(s), {runs} runs after {warmup} warm-up, "
          f"ai-edge-litert {ai_edge_litert.__version__}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
