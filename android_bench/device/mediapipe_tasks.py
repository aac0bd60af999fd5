"""What an app sees: MediaPipe Tasks' ImageClassifier on an exported .tflite (``--runtime mediapipe``).

    python3 -m android_bench.device.runner --runtime mediapipe int8.tflite --eval-pack eval_pack.npz

MediaPipe Tasks (``pip install mediapipe``) is the image-classification API of
Android, iOS, the web and Python, one C++ graph under all four. It reads only
the standard TFLite Model Metadata: the labels, and the normalization of a
float input; a uint8 input gets the raw pixels. This module measures, under
the contract of ``android_bench.device.measure``:

* **latency** of ``ImageClassifier.classify(image)`` on one uint8 RGB frame at
  the model's resolution, the call an app makes: MediaPipe's preprocessing
  (frame to input tensor, normalization), inference on its bundled TFLite
  (CPU, XNNPACK) and postprocessing (scores, sorted categories with their
  labels). Init is ``create_from_options`` (the model, its metadata, the
  graph); the ``mp.Image`` is built once, before, and is not timed. MediaPipe's
  Python API has no thread count: the row says ``threads`` 1, what its CPU
  inference is said to use outside mobile platforms (not verified here), and
  the report compares it with ``invoke()`` at 1 thread;
* **top-1**: ``classify`` on every eval-pack image, a grayscale one repeated
  into the three channels as an app sends a gray frame; the answer is the
  first category MediaPipe returns (its highest score; between equal scores,
  its own order).

Only this runtime imports mediapipe, and only this module. Python 3.9 compatible.
"""
from __future__ import annotations

import platform
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np

from android_bench.device import fingerprint, tflite_metadata
from android_bench.device.evaluate import EvaluationError, score

NAME = "mediapipe"
INSTALL = "pip install mediapipe"


def _import():
    """mediapipe, without the TensorFlow it imports when installed: only for its API docs generator
    (mediapipe/tasks/python/core/optional_dependencies.py), 5 s of a measurement's start-up. A None
    in sys.modules makes that import fail as "not installed"; TensorFlow imports normally afterwards."""
    blocked = "tensorflow" not in sys.modules
    if blocked:
        sys.modules["tensorflow"] = None
    try:
        import mediapipe
        from mediapipe.tasks.python import vision  # noqa: F401 (imported here, under the block)
    finally:
        if blocked and "tensorflow" in sys.modules and sys.modules["tensorflow"] is None:
            del sys.modules["tensorflow"]
    return mediapipe


def cpu_problem() -> Optional[str]:
    """Why this CPU cannot run mediapipe's aarch64 build, or None. Its wheels are built with the
    ARMv8.1 atomics (LSE) and stop with SIGILL without them: a Raspberry Pi 5 (Cortex-A76) has
    them, a Pi 4 (Cortex-A72, ARMv8.0) does not."""
    if platform.machine() not in ("aarch64", "arm64") or not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/cpuinfo") as f:
            features = [ln.split(":", 1)[1].split() for ln in f if ln.startswith("Features")]
    except OSError:
        return None
    if features and "atomics" not in features[0]:
        return ("mediapipe's aarch64 build needs the ARMv8.1 atomics (LSE), which this CPU lacks (no "
                "'atomics' in /proc/cpuinfo): it runs on a Raspberry Pi 5 (Cortex-A76), not on a Pi 4 "
                "(Cortex-A72)")
    return None


def version() -> str:
    """The installed mediapipe's version; ImportError when it is not installed."""
    return str(getattr(_import(), "__version__", "unknown"))


def classifier(model: str):
    """(mediapipe module, ImageClassifier on ``model`` with default options)."""
    mp = _import()
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model))
    try:
        return mp, vision.ImageClassifier.create_from_options(options)
    except (RuntimeError, ValueError, OSError) as e:   # it says why in any of these (FileNotFoundError too)
        raise EvaluationError(f"MediaPipe Tasks cannot load {model}: {e}") from None


def frame(mp, image: np.ndarray):
    """An mp.Image (SRGB) of one (H, W, 1 or 3) uint8 image."""
    if image.ndim != 3 or image.dtype != np.uint8 or image.shape[-1] not in (1, 3):
        raise EvaluationError(f"expected an (H, W, 1 or 3) uint8 image, got {image.shape} {image.dtype}")
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


def top(result) -> Optional[Any]:
    """MediaPipe's first category of a ClassifierResult (None when it returned none)."""
    heads = result.classifications
    return heads[0].categories[0] if heads and heads[0].categories else None


def latency(model: str, sample: Optional[np.ndarray], protocol) -> Dict[str, Any]:
    """Init, first call and timed ``classify()`` of one model on one uint8 frame."""
    from android_bench.device.measure import time_invoke
    mp_version = version()   # imported first: the baseline RSS includes mediapipe
    baseline = fingerprint.rss_kb()["rss_kb"]
    t0 = time.perf_counter()
    mp, clf = classifier(model)
    init_ms = (time.perf_counter() - t0) * 1000.0
    with open(model, "rb") as f:
        shape = tflite_metadata.input_shape(f.read())
    if sample is None:   # no eval pack: a mid-grey frame
        sample = np.full((1, shape[1], shape[2], 3), 128, np.uint8)
    image = frame(mp, sample[0])
    peak: Dict[str, Optional[int]] = {}
    timing = time_invoke(lambda: clf.classify(image), protocol,
                         after_warmup=lambda: peak.update(fingerprint.rss_kb()))
    best = top(clf.classify(image))
    clf.close()
    return {"init_ms": init_ms, **timing, "baseline_rss_kb": baseline, "peak_rss_kb": peak["peak_rss_kb"],
            "runtime": NAME, "runtime_version": mp_version,
            "input": {"shape": shape, "frame": "uint8 SRGB, the model's resolution"},
            "top_category": None if best is None else {"index": best.index, "label": best.category_name,
                                                       "score": best.score}}


def accuracy(model: str, eval_pack: str, images: Optional[int], predictions_out: str) -> Dict[str, Any]:
    """Top-1 of MediaPipe's answers on the eval pack; per-image classes saved to ``predictions_out``."""
    from android_bench.device.measure import eval_images
    x, y, labels = eval_images(eval_pack, images)
    mp_version = version()
    mp, clf = classifier(model)
    t0 = time.perf_counter()
    predictions: List[int] = []
    wrong_names = set()
    for image in x:
        best = top(clf.classify(frame(mp, image)))
        if best is None:
            raise EvaluationError(f"MediaPipe returned no category for an image of {model}")
        predictions.append(int(best.index))
        if not 0 <= best.index < len(labels) or best.category_name != labels[best.index]:
            wrong_names.add((best.index, best.category_name))
    seconds = time.perf_counter() - t0
    clf.close()
    if wrong_names:
        raise EvaluationError(f"MediaPipe's category names {sorted(wrong_names)[:5]} are not the eval pack's "
                              f"labels {labels}: the model's label file and the eval pack disagree")
    result = score(np.asarray(predictions, np.int64), y, labels, seconds, {"name": NAME, "version": mp_version})
    np.save(predictions_out, result.predictions)
    return {**result.to_dict(), "batch_size": 1, "threads": 1, "runtime": NAME, "runtime_version": mp_version}


def run_job(job: Dict[str, Any]) -> Dict[str, Any]:
    from android_bench.device.measure import Protocol, ProtocolError
    if job["kind"] == "latency":
        sample = np.load(job["sample"]) if job.get("sample") else None
        return latency(job["model"], sample, Protocol(**job.get("protocol", {})))
    if job["kind"] == "accuracy":
        return accuracy(job["model"], job["eval_pack"], job.get("images"), job["predictions_out"])
    raise ProtocolError(f"job kind must be 'latency' or 'accuracy', got {job['kind']!r}")
