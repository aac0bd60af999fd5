"""A STAND-IN for TFLite's benchmark_model binary (a test double), for the fake adb phone.

It really runs the model -- ``android_bench.device.evaluate.Classifier`` on
numpy and the installed interpreter (ai_edge_litert), with ``--num_threads``
and ``--use_xnnpack`` -- times every ``invoke()`` in whole µs, and prints what
benchmark_model prints, in its format (``INFO: `` prefixes, a ``count=`` line
per run loop with p5/median/p95, the ``Inference timings in us`` summary, the
memory-footprint line from this process's RSS). Its numbers are measurements
of this machine, never constants.

What it cannot do, it says, as the real binary does on a phone without them:
``--use_gpu=true`` and ``--use_nnapi=true`` fail with an ``ERROR:`` line and
exit 1. ``--enable_op_profiling=true`` prints benchmark_model's op table with
the model's real ops in run order; the Python interpreters have no per-op
timer, so each op is given an equal share of the measured invoke time -- the
table exercises the parser and the report, not op costs.

``FAKE_BENCHMARK_PERCENTILES=0`` drops p5/median/p95 (binaries built before
they were printed); ``FAKE_BENCHMARK_CRASH_AFTER_WARMUP=1`` stops after the
warm-up loop, as a killed run does.

Made executable by ``install(path)``: a script with this Python's shebang.
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def install(path: Path) -> Path:
    path.write_text(f"#!{sys.executable}\n# stand-in for TFLite's benchmark_model (a test double): {__file__}\n"
                    f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
                    f"from tests.android_bench.fake_benchmark_model import main\nsys.exit(main(sys.argv[1:]))\n")
    path.chmod(0o755)
    return path


def _g(x: float) -> str:
    """A double as C++'s default ostream prints it (6 significant digits)."""
    return f"{x:g}"


def stat_line(us: list[int], percentiles: bool) -> str:
    """tsl's Stat / StatWithPercentiles OutputToStream."""
    if not us:
        return "count=0"
    n = len(us)
    if min(us) == max(us):
        text = f"count={n} curr={us[-1]}" + ("(all same)" if n > 1 else "")
    else:
        avg = sum(us) / n
        std = int(math.sqrt(max(sum(u * u for u in us) / n - avg * avg, 0.0)))
        text = f"count={n} first={us[0]} curr={us[-1]} min={min(us)} max={max(us)} avg={_g(avg)} std={std}"
    if percentiles:
        ordered = sorted(us)
        text += " " + " ".join(f"{k}={ordered[n * p // 100]}" for k, p in (("p5", 5), ("median", 50), ("p95", 95)))
    return text


def _loop(invoke, runs: int, min_secs: float, max_secs: float = 150.0) -> list[int]:
    print(f"INFO: Running benchmark for at least {runs} iterations and at least {_g(min_secs)} seconds but "
          f"terminate if exceeding {_g(max_secs)} seconds.", flush=True)
    out: list[int] = []
    start = time.perf_counter()
    while (len(out) < runs or time.perf_counter() - start < min_secs) and time.perf_counter() - start <= max_secs:
        t0 = time.perf_counter_ns()
        invoke()
        out.append((time.perf_counter_ns() - t0) // 1000)
    return out


def main(argv: list[str]) -> int:
    flags = {}
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg:
            print(f"ERROR: this stand-in takes --name=value flags, got {arg!r}", file=sys.stderr)
            return 1
        key, value = arg[2:].split("=", 1)
        flags[key] = value
    true = lambda k: flags.get(k, "false").lower() in ("1", "true")   # noqa: E731
    print("INFO: STARTING!\nINFO: Log parameter values verbosely: [0]", flush=True)
    if "graph" not in flags:
        print("ERROR: Please specify the name of your TF Lite input file with --graph\nBenchmarking failed.",
              file=sys.stderr)
        return 1
    threads = int(flags.get("num_threads", "-1"))
    print(f"INFO: Num threads: [{threads}]\nINFO: Graph: [{flags['graph']}]", flush=True)
    for delegate in ("gpu", "nnapi"):
        if true(f"use_{delegate}"):
            print(f"ERROR: this stand-in benchmark_model (a test double) has no {delegate.upper()} delegate.\n"
                  f"ERROR: Failed to apply {delegate.upper()} delegate.\nBenchmarking failed.", flush=True)
            return 1
    import numpy as np

    from android_bench.device import fingerprint
    from android_bench.device.evaluate import Classifier

    start_kb = fingerprint.rss_kb()["rss_kb"]
    t0 = time.perf_counter_ns()
    clf = Classifier(flags["graph"], batch_size=1, num_threads=None if threads < 1 else threads,
                     xnnpack=true("use_xnnpack"))
    init_us = (time.perf_counter_ns() - t0) // 1000
    init_kb = fingerprint.rss_kb()["rss_kb"]
    image = np.random.default_rng(0).integers(0, 256, (1, *clf.preprocessing.input_shape), dtype=np.uint8)
    it = clf.interpreter
    it.set_tensor(clf._input, clf.preprocessing.quantize_input(image, clf.input["dtype"], clf.input["scale"],
                                                               clf.input["zero_point"]))
    print(f"INFO: The input model file size (MB): {_g(os.path.getsize(flags['graph']) / 1e6)}\n"
          f"INFO: Initialized session in {_g(init_us / 1e3)}ms.", flush=True)
    percentiles = os.environ.get("FAKE_BENCHMARK_PERCENTILES", "1") != "0"
    warmup = _loop(it.invoke, int(flags.get("warmup_runs", "1")), float(flags.get("warmup_min_secs", "0.5")))
    print(f"INFO: {stat_line(warmup, percentiles)}\n", flush=True)
    if os.environ.get("FAKE_BENCHMARK_CRASH_AFTER_WARMUP") == "1":
        print(f"INFO: Running benchmark for at least {flags.get('num_runs', '50')} iterations", flush=True)
        os.kill(os.getpid(), 9)
    timed = _loop(it.invoke, int(flags.get("num_runs", "50")), float(flags.get("min_secs", "1")))
    print(f"INFO: {stat_line(timed, percentiles)}\n", flush=True)
    end_kb = fingerprint.rss_kb()["rss_kb"]
    warm_avg = sum(warmup) / len(warmup) if warmup else float("nan")
    print(f"INFO: Inference timings in us: Init: {init_us}, First inference: {warmup[0] if warmup else 'nan'}, "
          f"Warmup (avg): {_g(warm_avg)}, Inference (avg): {_g(sum(timed) / len(timed))}\n"
          f"INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE "
          f"to the actual memory footprint of the model at runtime. Take the information at your discretion.\n"
          f"INFO: Memory footprint delta from the start of the tool (MB): init={_g((init_kb - start_kb) / 1024)} "
          f"overall={_g((end_kb - start_kb) / 1024)}", flush=True)
    if true("enable_op_profiling"):
        ops = it._get_ops_details()
        share = sum(timed) / len(timed) / 1000.0 / max(len(ops), 1)   # ms per op: an equal share (see above)
        lines = ["INFO: Operator-wise Profiling Info for Regular Benchmark Runs:",
                 "============================== Run Order ==============================",
                 "\t" + "\t".join(["[node type]".rjust(40), "[first]".rjust(9), "[avg ms]".rjust(9), "[%]".rjust(8),
                                   "[cdf%]".rjust(8), "[mem KB]".rjust(10), "[times called]".rjust(9), "[Name]"])]
        for k, op in enumerate(ops):
            pct = 100.0 / len(ops)
            lines.append("\t" + "\t".join([op["op_name"].rjust(40), f"{share:9.3f}", f"{share:9.3f}",
                                           f"{pct:7.3f}%", f"{pct * (k + 1):7.3f}%", f"{0:10.3f}", f"{1:9d}",
                                           f"[{op['op_name'].lower()}_{op['index']}]:{op['index']}"]))
        lines += ["", f"Number of nodes executed: {len(ops)}",
                  f"Timings (microseconds): {stat_line(timed, False)}", "Memory (bytes): count=0",
                  f"{len(ops)} nodes observed", ""]
        print("\n".join(lines), flush=True)
    return 0
