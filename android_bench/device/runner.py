"""The device runner: latency and accuracy of each .tflite, run on the target itself.

    python3 -m android_bench.device.runner float32.tflite int8.tflite \\
        --eval-pack eval_pack.npz --threads 1,2,4 --out results.json

What it needs on the device: Python 3.9+, numpy (1.x or 2.x) and one of
ai_edge_litert, tflite_runtime, tensorflow (``--runtime`` forces one; ``--runtime
mediapipe`` measures MediaPipe Tasks' ``ImageClassifier.classify()`` instead,
what an app sees: ``android_bench.device.mediapipe_tasks``), plus
the files ``python -m android_bench run`` copies: ``imagedata/__init__.py``,
``imagedata/preprocess.py``, ``android_bench/__init__.py`` and
``android_bench/device/*.py``. ``--check`` only says whether the environment
can run it (exit 3 and what to install when not).

Each model gets one accuracy job and one latency job per (threads, XNNPACK),
each in its own process (``android_bench.device.measure``, where the
measurement contract is written down). A job that fails -- a model the
runtime cannot load, an op an older runtime lacks, a crash -- is recorded as
that row's ``error`` and the others still run; the exit status is then 1, after
the results are written. A model whose metadata is missing or corrupt still
gets its latency measured; its rows say what is missing (``metadata``) and why
top-1 was not measured (``accuracy_skipped``). Agreement is the fraction of eval-pack images whose
top-1 equals the reference model's (``--reference``, by default the file
named float32.tflite); it is None when the reference itself failed. The
per-image top-1 of every variant is kept too (``predictions``: variant -> list
over the eval-pack images used, with their labels in ``eval_labels``), so the
host can compare targets image by image and test accuracy differences.

Progress goes to stderr as ``[k/N] ...`` lines (the host turns them into a
progress bar); the results JSON goes to ``--out``, written under a temporary
name and renamed when complete.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

FORMAT = 1
EXIT_FAILED_VARIANTS, EXIT_USAGE, EXIT_ENVIRONMENT = 1, 2, 3
XNNPACK_CHOICES = {"on": (True,), "off": (False,), "both": (True, False)}
# Relative to the folder that holds android_bench/ and imagedata/: what a device needs.
DEVICE_FILES = ("imagedata/__init__.py", "imagedata/preprocess.py", "android_bench/__init__.py",
                "android_bench/device/__init__.py", "android_bench/device/evaluate.py",
                "android_bench/device/fingerprint.py", "android_bench/device/measure.py",
                "android_bench/device/mediapipe_tasks.py", "android_bench/device/runner.py",
                "android_bench/device/tflite_metadata.py")
APP_RUNTIMES = ("mediapipe",)   # not an interpreter: the API an app calls (mediapipe_tasks)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class EnvironmentProblem(RuntimeError):
    """The device cannot run the runner at all; the message says what to install."""


def _python() -> str:
    return f"{sys.executable} (Python {sys.version.split()[0]})"


def _numpy_missing(e: Exception) -> EnvironmentProblem:
    return EnvironmentProblem(f"numpy cannot be imported by {_python()} ({e}): pip install tflite-runtime "
                              f"'numpy<2' (or pip install ai-edge-litert numpy)")


def check_environment(runtime: Optional[str]) -> Dict[str, Any]:
    """Python, numpy and the interpreter this process would use; EnvironmentProblem if unusable."""
    if sys.version_info < (3, 9):
        raise EnvironmentProblem(f"{_python()} is too old: the runner needs Python 3.9 or newer")
    try:
        import numpy
    except ImportError as e:
        raise _numpy_missing(e) from None
    from android_bench.device.evaluate import EvaluationError, interpreter_class
    if runtime in APP_RUNTIMES:
        from android_bench.device import mediapipe_tasks
        try:
            info = {"name": runtime, "version": mediapipe_tasks.version()}
        except (ImportError, OSError) as e:   # not installed, or a wheel this machine cannot load
            raise EnvironmentProblem(f"{_python()}: mediapipe cannot be imported ({type(e).__name__}: {e}): "
                                     f"{mediapipe_tasks.INSTALL}") from None
        problem = mediapipe_tasks.cpu_problem()
        if problem:
            raise EnvironmentProblem(problem)
        return {"python": sys.version.split()[0], "executable": sys.executable, "numpy": numpy.__version__,
                "runtime": info["name"], "runtime_version": info["version"]}
    try:
        _, info = interpreter_class(runtime)
    except EvaluationError as e:
        raise EnvironmentProblem(f"{_python()}: {e}") from None
    return {"python": sys.version.split()[0], "executable": sys.executable, "numpy": numpy.__version__,
            "runtime": info["name"], "runtime_version": info["version"]}


def parse_threads(text: str) -> Tuple[int, ...]:
    try:
        threads = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        threads = ()
    if not threads or min(threads) < 1:
        raise argparse.ArgumentTypeError(f"threads must be comma-separated integers >= 1 such as 1,2,4, "
                                         f"got {text!r}")
    return threads


def _parser() -> argparse.ArgumentParser:
    from android_bench.device.evaluate import DEFAULT_BATCH, RUNTIMES
    from android_bench.device.measure import Protocol
    d = Protocol()
    p = argparse.ArgumentParser(prog="python3 -m android_bench.device.runner",
                                description="Latency and accuracy of .tflite models on this device.")
    p.add_argument("models", nargs="*", help=".tflite files written by python -m export")
    p.add_argument("--eval-pack", help="eval_pack.npz for accuracy (none: latency only)")
    p.add_argument("--out", default="results.json", help="results JSON (default: %(default)s)")
    p.add_argument("--threads", type=parse_threads, default=(1,), help="thread counts to sweep, e.g. 1,2,4")
    p.add_argument("--xnnpack", choices=sorted(XNNPACK_CHOICES), default="on",
                   help="XNNPACK delegate on, off or both (default: %(default)s)")
    p.add_argument("--runtime", choices=("auto",) + RUNTIMES + APP_RUNTIMES, default="auto")
    p.add_argument("--warmup-runs", type=int, default=d.warmup_runs)
    p.add_argument("--warmup-seconds", type=float, default=d.warmup_seconds)
    p.add_argument("--runs", type=int, default=d.runs, help="timed runs, at least")
    p.add_argument("--min-seconds", type=float, default=d.min_seconds, help="timed seconds, at least")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="images per call for accuracy")
    p.add_argument("--eval-images", type=int, default=None, help="first N eval-pack images (default: all)")
    p.add_argument("--eval-threads", type=int, default=None, help="threads for accuracy (default: max of --threads)")
    p.add_argument("--reference", default="float32", help="variant that agreement compares with")
    p.add_argument("--job-timeout", type=float, default=None, help="seconds before a job is killed")
    p.add_argument("--check", action="store_true", help="only check Python, numpy and the runtime")
    return p


def variant_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def run_job(job: Dict[str, Any], work: str, timeout: Optional[float]) -> Tuple[Dict[str, Any], List[str]]:
    """Run one measure job in a child Python; (its result or {"error"}, its stderr lines)."""
    path = os.path.join(work, "job.json")
    job = dict(job, out=os.path.join(work, "job-result.json"))
    if os.path.exists(job["out"]):
        os.remove(job["out"])
    with open(path, "w") as f:
        json.dump(job, f)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    try:
        r = subprocess.run([sys.executable, "-m", "android_bench.device.measure", path], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s (--job-timeout)"}, []
    log = [line for line in r.stderr.splitlines() if line.strip()]
    if os.path.exists(job["out"]):
        with open(job["out"]) as f:
            return json.load(f), log
    how = f"crashed ({_signal_name(r.returncode)})" if r.returncode < 0 else f"exited {r.returncode}"
    tail = " | ".join(log[-3:]) or "no output"
    return {"error": f"the measuring process {how} without a result: {tail}"}, log


class Progress:
    def __init__(self, total: int):
        self.total, self.done = total, 0

    def __call__(self, message: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {message}", file=sys.stderr, flush=True)


def _sample(eval_pack: str, work: str) -> str:
    """The latency input, the first eval-pack image, as a .npy (without a pack: mid-grey)."""
    import numpy as np
    path = os.path.join(work, "sample.npy")
    with np.load(eval_pack) as pack:
        np.save(path, pack["x"][:1])
    return path


def settings(args: argparse.Namespace) -> List[Tuple[int, bool]]:
    """(threads, XNNPACK) of each latency job of one model; MediaPipe sets neither: one job."""
    if args.runtime in APP_RUNTIMES:
        return [(1, True)]
    return [(t, x) for t in args.threads for x in XNNPACK_CHOICES[args.xnnpack]]


def measure_all(args: argparse.Namespace, work: str, progress: Progress
                ) -> Tuple[List[Dict[str, Any]], Dict[str, List[int]]]:
    """(one row per model, threads and XNNPACK setting; per-image top-1 of each model)."""
    import numpy as np

    from android_bench.device.evaluate import agreement
    runtime = None if args.runtime == "auto" else args.runtime
    protocol = {"warmup_runs": args.warmup_runs, "warmup_seconds": args.warmup_seconds,
                "runs": args.runs, "min_seconds": args.min_seconds}
    eval_threads = args.eval_threads or max(args.threads)
    # Absolute paths: the jobs run with the runner's own folder as working directory.
    eval_pack = os.path.abspath(args.eval_pack) if args.eval_pack else None
    sample = _sample(eval_pack, work) if eval_pack else None
    # The reference first, so its predictions exist when the others are compared with them.
    models = sorted(map(os.path.abspath, args.models), key=lambda m: variant_name(m) != args.reference)
    rows, predictions = [], {}
    for model in models:
        name = variant_name(model)
        with open(model, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        info = {"variant": name, "file": os.path.basename(model), "size_bytes": os.path.getsize(model),
                "sha256": digest}
        acc: Dict[str, Any] = {}
        if eval_pack:
            pred_path = os.path.join(work, f"{name}.predictions.npy")
            acc, _ = run_job({"kind": "accuracy", "model": model, "eval_pack": eval_pack,
                              "batch_size": args.batch_size, "threads": eval_threads, "runtime": runtime,
                              "images": args.eval_images, "predictions_out": pred_path}, work, args.job_timeout)
            if "skipped" in acc:
                progress(f"{name}: {acc['skipped']}")
            elif "error" not in acc:
                predictions[name] = np.load(pred_path)
                progress(f"{name}: top-1 {100 * acc['top1']:.2f}% on {acc['images']} images "
                         f"(batch {acc['batch_size']}, {acc['seconds']:.1f} s)")
            else:
                progress(f"{name}: accuracy FAILED: {acc['error']}")
        for threads, xnnpack in settings(args):
            lat, log = run_job({"kind": "latency", "model": model, "sample": sample, "threads": threads,
                                "xnnpack": xnnpack, "runtime": runtime, "protocol": protocol},
                               work, args.job_timeout)
            row = dict(info, threads=threads, xnnpack=xnnpack, **lat)
            # The runtimes log "Created TensorFlow Lite XNNPACK delegate" when they apply it.
            row["xnnpack_delegate_logged"] = any("XNNPACK" in line for line in log)
            row["log"] = log[-10:]
            errors = [lat["error"]] if lat.get("error") else []
            if acc.get("error") and acc["error"] != lat.get("error"):
                errors.append(f"accuracy: {acc['error']}")
            row["error"] = "; ".join(errors) or None
            for key in ("top1", "per_class_top1", "images"):
                row[key] = acc.get(key)
            row["accuracy_skipped"] = acc.get("skipped")
            row["accuracy"] = {k: v for k, v in acc.items() if k not in ("per_class_top1", "skipped")} or None
            rows.append(row)
            where = f"{name} threads={threads} xnnpack={'on' if xnnpack else 'off'}"
            progress(f"{where}: FAILED: {lat['error']}" if lat.get("error") else
                     f"{where}: median {lat['median_ms']:.3f} ms, p90 {lat['p90_ms']:.3f} ms "
                     f"({lat['runs']} runs)")
    reference = predictions.get(args.reference)
    for row in rows:
        pred = predictions.get(row["variant"])
        ok = reference is not None and pred is not None and pred.shape == reference.shape
        row["agreement"] = agreement(pred, reference) if ok else None
        row["reference"] = args.reference if ok else None
    # Per-image top-1 of each variant, for what needs the images themselves: agreement with
    # another target's predictions, McNemar's test between variants.
    return rows, {name: [int(v) for v in pred] for name, pred in predictions.items()}


def _labels(eval_pack: Optional[str], images: Optional[int]) -> Optional[List[int]]:
    """The labels of the images ``predictions`` covers, so the results file alone gives per-image
    correctness (McNemar's test in the report)."""
    if not eval_pack:
        return None
    import numpy as np
    with np.load(eval_pack) as pack:
        return [int(v) for v in pack["y"][:images]]


def _write_json(path: str, doc: Dict[str, Any]) -> None:
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


def main(argv: Optional[List[str]] = None) -> int:
    try:
        if sys.version_info < (3, 9):
            raise EnvironmentProblem(f"{_python()} is too old: the runner needs Python 3.9 or newer")
        try:
            parser = _parser()   # imports numpy, through evaluate and measure
        except ImportError as e:
            raise _numpy_missing(e) from None
        args = parser.parse_args(argv)
        runtime = None if args.runtime == "auto" else args.runtime
        env = check_environment(runtime)
    except EnvironmentProblem as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    if args.check:
        print(json.dumps(env))
        return 0
    if not args.models:
        print("error: no models: pass the .tflite files to measure", file=sys.stderr)
        return EXIT_USAGE
    missing = [m for m in args.models + ([args.eval_pack] if args.eval_pack else []) if not os.path.isfile(m)]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    names = [variant_name(m) for m in args.models]
    if len(set(names)) != len(names):
        print(f"error: two models with the same name among {names}: variants are told apart by file name",
              file=sys.stderr)
        return EXIT_USAGE

    from android_bench.device import fingerprint
    from android_bench.device.measure import Protocol, ProtocolError, read_eval_pack
    try:
        protocol = Protocol(args.warmup_runs, args.warmup_seconds, args.runs, args.min_seconds)
        if args.eval_pack:
            read_eval_pack(args.eval_pack)   # a bad pack stops here, not in every accuracy job
    except ProtocolError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    info = fingerprint.fingerprint({"name": env["runtime"], "version": env["runtime_version"]})
    per_model = len(settings(args)) + (1 if args.eval_pack else 0)
    progress = Progress(per_model * len(args.models))
    models = f"{len(args.models)} model{'s' if len(args.models) != 1 else ''}"
    print(f"measuring {models} on {info['hostname']} ({info['cpu']}, {info['cores']} cores) "
          f"with {env['runtime']} {env['runtime_version']}", file=sys.stderr, flush=True)
    work = tempfile.mkdtemp(prefix="android_bench_jobs.")
    try:
        rows, predictions = measure_all(args, work, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        row.setdefault("runtime", env["runtime"])
        row.setdefault("runtime_version", env["runtime_version"])
    doc = {"format": FORMAT, "artifact": "android_bench results", "started": started,
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": env, "fingerprint": info,
           "after": {"temperature_c": fingerprint.temperatures() or None, "vcgencmd": fingerprint.vcgencmd()},
           "protocol": protocol.to_dict(),
           "settings": {"threads": list(args.threads), "xnnpack": args.xnnpack, "runtime": args.runtime,
                        "batch_size": args.batch_size, "eval_images": args.eval_images,
                        "eval_threads": args.eval_threads or max(args.threads), "reference": args.reference,
                        "eval_pack": os.path.basename(args.eval_pack) if args.eval_pack else None},
           "results": rows, "predictions": predictions, "eval_labels": _labels(args.eval_pack, args.eval_images)}
    _write_json(args.out, doc)
    failed = sorted({r["variant"] for r in rows if r["error"]})
    if failed:
        print(f"error: {len(failed)} of {models} failed ({', '.join(failed)}); "
              f"their errors are in {args.out}", file=sys.stderr)
        return EXIT_FAILED_VARIANTS
    return 0


if __name__ == "__main__":
    sys.exit(main())
