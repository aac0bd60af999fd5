"""One measurement of one .tflite, in a process of its own: the benchmark contract.

    python3 -m android_bench.device.measure job.json     # writes the job's "out" file

The runner (``android_bench.device.runner``) starts this once per model for
accuracy and once per (model, threads, XNNPACK) for latency, so that peak RSS
is that configuration's own and a model that crashes the interpreter takes
only its own process down.

Latency, per (model, threads, XNNPACK on/off), one image (batch 1):

* **init**: reading the file, parsing its metadata, constructing the
  interpreter (delegates applied) and ``allocate_tensors()``; one sample;
* **first inference**: the first ``invoke()``, reported on its own (lazy
  packing of weights and caches make it slower);
* **warm-up**: ``invoke()`` until both ``warmup_runs`` runs and
  ``warmup_seconds`` seconds are done; not in the statistics;
* **timed runs**: until both ``runs`` runs and ``min_seconds`` seconds are done;
* **timed region**: ``invoke()`` alone, with ``time.perf_counter()``; the
  input is set once before (the first eval-pack image, quantized for integer
  inputs), and no ``set_tensor``/``get_tensor`` copy is timed;
* **statistics** over the timed runs, in ms: min, median, mean, p90, p99
  (linear interpolation between order statistics) and std (population, ddof=0).
  The report quotes the median: robust to the occasional scheduler hiccup.
  Up to 1000 of the per-run times are kept (``samples_ms``, evenly spaced over
  the timed period) for the report's bootstrap confidence intervals;
* **peak RSS**: VmHWM of the process after the warm-up (``peak_rss_kb``; the
  timed runs add only their own list of samples), with VmRSS once numpy and
  the runtime were imported but before the model was loaded
  (``baseline_rss_kb``): the difference is what the model costs.

Accuracy, per model: ``evaluate.Classifier`` on the eval pack (batched, the
input resized to the batch), top-1 overall and per class; the predictions go
to a .npy so the runner can compute agreement with float32's. A model whose
metadata does not say how to normalize its input, or has no labels, gets
latency only: the accuracy job returns ``skipped`` with what is missing.

``runtime="mediapipe"`` measures what an app sees instead
(``android_bench.device.mediapipe_tasks``): the same contract around
``ImageClassifier.classify()`` on a uint8 RGB frame, and top-1 of its answers.
Only that runtime imports mediapipe.

Python 3.9 compatible: numpy, an interpreter and the standard library only.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from android_bench.device import fingerprint
from android_bench.device.evaluate import Classifier, evaluate, interpreter_class
from android_bench.device.tflite_metadata import MetadataError


class ProtocolError(ValueError):
    pass


@dataclass(frozen=True)
class Protocol:
    """How long to warm up and to measure; the run goes on until both count and seconds are met."""
    warmup_runs: int = 5
    warmup_seconds: float = 0.5
    runs: int = 50
    min_seconds: float = 2.0

    def __post_init__(self):
        for name in ("warmup_runs", "runs"):
            value = getattr(self, name)
            if int(value) != value or value < (1 if name == "runs" else 0):
                raise ProtocolError(f"{name} must be an integer >= {1 if name == 'runs' else 0}, got {value!r}")
        for name in ("warmup_seconds", "min_seconds"):
            if not getattr(self, name) >= 0:
                raise ProtocolError(f"{name} must be >= 0 seconds, got {getattr(self, name)!r}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def summarize(seconds: List[float]) -> Dict[str, float]:
    """min, median, mean, p90, p99 and std of per-run times, converted to ms."""
    if not seconds:
        raise ProtocolError("no timed runs to summarize")
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"min_ms": float(ms.min()), "median_ms": float(np.median(ms)), "mean_ms": float(ms.mean()),
            "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
            "std_ms": float(ms.std())}


def time_invoke(invoke: Callable[[], Any], protocol: Protocol,
                clock: Callable[[], float] = time.perf_counter,
                after_warmup: Optional[Callable[[], None]] = None) -> Dict[str, Any]:
    """First inference, warm-up, then the timed runs of ``invoke`` (the contract above).

    ``after_warmup`` is called between the warm-up and the timed runs (untimed).
    """
    t0 = clock()
    invoke()
    first = clock() - t0

    n, start = 0, clock()
    while n < protocol.warmup_runs or clock() - start < protocol.warmup_seconds:
        invoke()
        n += 1
    warmup_seconds = clock() - start
    if after_warmup is not None:
        after_warmup()

    samples: List[float] = []
    start = clock()
    while len(samples) < protocol.runs or clock() - start < protocol.min_seconds:
        t0 = clock()
        invoke()
        samples.append(clock() - t0)
    timed_seconds = clock() - start
    return {"first_ms": first * 1000.0, "warmup_runs": n, "warmup_seconds": warmup_seconds,
            "runs": len(samples), "timed_seconds": timed_seconds, **summarize(samples),
            "samples_ms": kept_samples(samples)}


MAX_KEPT_SAMPLES = 1000


def kept_samples(seconds: List[float], limit: int = MAX_KEPT_SAMPLES) -> List[float]:
    """Per-run times in ms for the report's statistics (bootstrap intervals), in run order.

    At most ``limit``: evenly spaced runs over the whole timed period, so a slow
    drift (thermal throttling) stays visible; rounded to 0.1 us.
    """
    if len(seconds) > limit:
        step = len(seconds) / limit
        seconds = [seconds[int(i * step)] for i in range(limit)]
    return [round(s * 1000.0, 4) for s in seconds]


def latency(model: str, sample: Optional[np.ndarray], threads: Optional[int], xnnpack: bool,
            runtime: Optional[str], protocol: Protocol) -> Dict[str, Any]:
    """Init, first inference and timed ``invoke()`` of one model on one (1, H, W, C) uint8 image.

    The interpreter is built for batch 1 whatever the file's batch dimension:
    single-image latency is what an app waits for.
    """
    interpreter_class(runtime)   # import the runtime first: the baseline RSS includes it
    baseline = fingerprint.rss_kb()["rss_kb"]
    clf = Classifier(model, batch_size=1, num_threads=threads, runtime=runtime, xnnpack=xnnpack,
                     need_metadata=False)
    if sample is None:   # no eval pack: a mid-grey image
        sample = np.full((1, *clf.preprocessing.input_shape), 128, np.uint8)
    it = clf.interpreter
    it.set_tensor(clf._input, clf.as_input(sample[:1]))
    peak: Dict[str, Optional[int]] = {}
    # Peak RSS read before the timed runs: their list of samples (1 MB for 30k runs of a
    # fast model) is the benchmark's memory, not the model's.
    timing = time_invoke(it.invoke, protocol, after_warmup=lambda: peak.update(fingerprint.rss_kb()))
    return {"init_ms": clf.init_seconds * 1000.0, **timing, "baseline_rss_kb": baseline,
            "peak_rss_kb": peak["peak_rss_kb"], "runtime": clf.runtime["name"],
            "runtime_version": clf.runtime["version"], "input": clf.input, "output": clf.output,
            "metadata_variant": (clf.metadata or {}).get("variant"),
            "metadata": {"missing": clf.missing, "problems": clf.problems}}


def accuracy(model: str, eval_pack: str, batch_size: int, threads: Optional[int], xnnpack: bool,
             runtime: Optional[str], images: Optional[int], predictions_out: str) -> Dict[str, Any]:
    """Top-1 overall and per class on the eval pack; predictions saved to ``predictions_out``."""
    x, y, labels = eval_images(eval_pack, images)
    try:
        clf = Classifier(model, batch_size=batch_size, num_threads=threads, runtime=runtime, xnnpack=xnnpack)
    except MetadataError as e:
        return {"skipped": f"top-1 not measured: {e}"}
    if clf.labels is None:
        return {"skipped": f"top-1 not measured: the model has no labels ({'; '.join(clf.missing)})"}
    check_labels(clf.labels, labels)
    result = evaluate(clf, x, y, labels)
    np.save(predictions_out, result.predictions)
    return {**result.to_dict(), "batch_size": clf.batch_size, "threads": threads,
            "runtime": clf.runtime["name"], "runtime_version": clf.runtime["version"]}


def read_eval_pack(eval_pack: str):
    """(x, y, labels) of an eval pack, checked: x (N, H, W, C) uint8, y (N,) integers below
    len(labels). A file that is not one (cut off, not a zip, an array missing or of the wrong
    shape) raises ProtocolError saying so, on the host before anything is copied and here."""
    import zipfile
    import zlib
    try:
        with np.load(eval_pack, allow_pickle=False) as pack:
            missing = [k for k in ("x", "y", "labels") if k not in pack.files]
            if missing:
                raise ProtocolError(f"eval pack '{eval_pack}' has no {', '.join(missing)} array: rebuild it "
                                    f"with make export")
            x, y, labels = pack["x"], pack["y"], [str(v) for v in pack["labels"]]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        if isinstance(e, ProtocolError):
            raise
        raise ProtocolError(f"eval pack '{eval_pack}' cannot be read (cut off, or not an .npz: "
                            f"{str(e)[:200] or type(e).__name__}): rebuild it with make export") from None
    problem = None
    if x.ndim != 4 or x.dtype != np.uint8:
        problem = f"x must be (N, H, W, C) uint8, got {x.dtype} of shape {x.shape}"
    elif y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
        problem = f"y must be {len(x)} integer labels, got {y.dtype} of shape {y.shape}"
    elif len(y) and (y.min() < 0 or y.max() >= len(labels)):
        problem = f"y must be class indices below {len(labels)} (the labels), got {y.min()} to {y.max()}"
    if problem:
        raise ProtocolError(f"eval pack '{eval_pack}': {problem}: rebuild it with make export")
    return x, y, labels


def eval_images(eval_pack: str, images: Optional[int]):
    """(x, y, labels) of the first ``images`` images of an eval pack (all when None)."""
    x, y, labels = read_eval_pack(eval_pack)
    return (x, y, labels) if images is None else (x[:images], y[:images], labels)


def check_labels(model_labels: List[str], pack_labels: List[str]) -> None:
    if list(model_labels) != list(pack_labels):
        raise ProtocolError(f"the model's labels {model_labels} are not the eval pack's {pack_labels}: "
                            f"benchmark a model with the eval pack it was exported with")


def run_job(job: Dict[str, Any]) -> Dict[str, Any]:
    threads = job.get("threads")
    if job.get("runtime") == "mediapipe":   # the app's view: imports mediapipe, nothing else does
        from android_bench.device import mediapipe_tasks
        return mediapipe_tasks.run_job(job)
    if job["kind"] == "latency":
        sample = np.load(job["sample"]) if job.get("sample") else None
        return latency(job["model"], sample, threads, job.get("xnnpack", True), job.get("runtime"),
                       Protocol(**job.get("protocol", {})))
    if job["kind"] == "accuracy":
        return accuracy(job["model"], job["eval_pack"], job["batch_size"], threads, job.get("xnnpack", True),
                        job.get("runtime"), job.get("images"), job["predictions_out"])
    raise ProtocolError(f"job kind must be 'latency' or 'accuracy', got {job['kind']!r}")


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m android_bench.device.measure JOB.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        job = json.load(f)
    try:
        result, code = run_job(job), 0
    except Exception as e:   # recorded in the result file: the runner goes on with the next job
        result, code = {"error": f"{type(e).__name__}: {e}"}, 1
    tmp = job["out"] + ".partial"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, job["out"])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
