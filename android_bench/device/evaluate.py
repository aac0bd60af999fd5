"""Top-1 of a .tflite on uint8 images, with only numpy and a TFLite interpreter.

    from android_bench.device.evaluate import Classifier, evaluate
    clf = Classifier("build/int8.tflite")        # preprocessing read from the file's metadata
    result = evaluate(clf, x, y, labels)          # x (N, H, W, C) uint8, y (N,) int
    result.top1, result.per_class_top1

One implementation for the host (``python -m export`` measures every variant
with it for the manifest) and the device runner, so the two cannot disagree on
what "top-1" means:

* input: the normalization comes from the file's standard TFLite Model Metadata
  (``NormalizationOptions``, as MediaPipe Tasks reads it), the resolution and
  channels from its input tensor; the uint8 pixels go through
  ``Preprocessing.quantize_input`` with the tensor's own dtype, scale and zero
  point -- normalize for a float input, q = round(x / scale) + zero_point for an
  int8/uint8/int16 one. Grayscale images given to an RGB input are repeated
  into the three channels, as an app would send a gray frame;
* batching: the input is resized once to ``batch_size`` (the exported files
  declare batch 1, but their graphs take any batch) and the last batch is
  padded; a model that cannot be resized runs image by image;
* output: integer scores are dequantized, (q - zero_point) * scale, which keeps
  their order, so argmax is the same as on the raw integers;
* top-1 counts argmax == label; ties go to the lower class index (numpy's argmax).

The interpreter is the first of ai_edge_litert (LiteRT), tflite_runtime and
tensorflow.lite that imports, or the one ``runtime=`` names; ``xnnpack=False``
turns off the default XNNPACK delegate. ``batch_size=1`` is the image-by-image
mode: the batched one must give the same predictions (tests/android_bench).
Python 3.9 compatible; nothing but the standard library, numpy, an interpreter
and ``imagedata.preprocess``.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from android_bench.device import tflite_metadata
from imagedata.preprocess import Preprocessing

DEFAULT_BATCH = 64


class EvaluationError(ValueError):
    pass


RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")   # first importable wins
# What to install for each, said when it is missing. tflite-runtime 2.14 (the last
# release, Python <= 3.11) was built against numpy 1.x and fails to import with numpy 2.
INSTALL = {"ai_edge_litert": "pip install ai-edge-litert",
           "tflite_runtime": "pip install tflite-runtime 'numpy<2'",
           "tensorflow": "pip install tensorflow"}
NO_RUNTIME_HINT = ("pip install ai-edge-litert, or pip install tflite-runtime 'numpy<2' "
                   "(Python 3.11 or older, e.g. Raspberry Pi OS Bookworm)")


def _import_runtime(name: str) -> Tuple[Any, Dict[str, str]]:
    package = importlib.import_module(name)
    if name == "tensorflow":
        return package.lite.Interpreter, {"name": "tensorflow.lite",
                                          "version": str(getattr(package, "__version__", "unknown"))}
    cls = importlib.import_module(f"{name}.interpreter").Interpreter
    return cls, {"name": name, "version": str(getattr(package, "__version__", "unknown"))}


def interpreter_class(runtime: Optional[str] = None) -> Tuple[Any, Dict[str, str]]:
    """(Interpreter class, {"name", "version"} of the runtime that provides it).

    ``runtime`` None or "auto" takes the first of RUNTIMES that imports; a name
    from RUNTIMES takes that one or fails saying how to install it. An import
    that fails for another reason than absence (numpy 2 under tflite-runtime,
    a missing shared library) is reported, not silently skipped over.
    """
    if runtime not in (None, "auto") and runtime not in RUNTIMES:
        raise EvaluationError(f"runtime must be 'auto' or one of {', '.join(RUNTIMES)}, got {runtime!r}")
    names = RUNTIMES if runtime in (None, "auto") else (runtime,)
    reasons = []
    for name in names:
        try:
            return _import_runtime(name)
        except (ImportError, OSError, AttributeError) as e:
            missing = isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] == name
            reasons.append(f"{name}: " + ("not installed" if missing else
                                          f"import failed ({type(e).__name__}: {e})"))
    if runtime not in (None, "auto"):
        raise EvaluationError(f"the runtime {runtime} cannot be used ({reasons[0]}): {INSTALL[runtime]}")
    raise EvaluationError(f"no TFLite interpreter ({'; '.join(reasons)}): {NO_RUNTIME_HINT}")


def make_interpreter(cls: Any, content: bytes, num_threads: Optional[int] = None, xnnpack: bool = True):
    """An Interpreter on the model bytes; ``xnnpack=False`` turns the default delegates off.

    The three runtimes apply TFLite's default delegate (XNNPACK in their
    prebuilt wheels) unless the op resolver is BUILTIN_WITHOUT_DEFAULT_DELEGATES;
    the enum lives in the module that defines the Interpreter class.
    """
    kwargs: Dict[str, Any] = {"model_content": content, "num_threads": num_threads}
    if not xnnpack:
        resolver = getattr(importlib.import_module(cls.__module__), "OpResolverType", None)
        if resolver is None or not hasattr(resolver, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"):
            raise EvaluationError(f"{cls.__module__} cannot turn XNNPACK off (no "
                                  f"OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)")
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return cls(**kwargs)


def tensor_info(detail: Dict[str, Any]) -> Dict[str, Any]:
    """dtype, shape and (scale, zero_point) of one input/output detail, JSON-ready."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {"name": detail.get("name"), "dtype": np.dtype(detail["dtype"]).name,
            "shape": [int(d) for d in detail.get("shape_signature", detail["shape"])],
            "scale": float(scale), "zero_point": int(zero_point)}


class _NoProgress:
    def __init__(self, **_):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def update(self, n):
        pass


def metadata_preprocessing(found: Dict[str, Any], shape: Sequence[int], source: str) -> Preprocessing:
    """The Preprocessing of a (1, H, W, C) input from what ``tflite_metadata.inspect`` found."""
    norm = found["normalization"]
    if norm is None:
        raise tflite_metadata.MetadataError(
            f"{source} does not say how to normalize its input ({'; '.join(found['missing'] + found['problems'])}): "
            f"export it again (python -m export run), or pass the preprocessing")
    mean, std = norm.get("mean") or [], norm.get("std") or []
    if not mean or not std or len(set(mean)) > 1 or len(set(std)) > 1:
        raise tflite_metadata.MetadataError(f"{source}: NormalizationOptions mean {mean}, std {std}; this "
                                            f"runner takes one mean and one std for every channel")
    if len(shape) != 4 or shape[1] != shape[2]:
        raise EvaluationError(f"{source} takes input {list(shape)}; this runner takes square (1, H, H, C) images")
    interpolation = ((found["record"] or {}).get("preprocessing") or {}).get("interpolation", "bilinear")
    return Preprocessing(resolution=int(shape[1]), channels=int(shape[3]), mean=float(mean[0]),
                         std=float(std[0]), interpolation=interpolation)


class Classifier:
    """A .tflite image classifier: uint8 (N, H, W, C) images in, class scores out.

    ``model`` is a path or the file's bytes. ``preprocessing`` defaults to the
    one the file's metadata describes, so the .tflite alone is enough; with
    ``need_metadata=False`` a file without it still loads (for latency: its
    input then gets mid-grey pixels normalized to [-1, 1]) and ``missing`` says
    what it lacks. ``labels`` are the file's, None when it has none.
    """

    def __init__(self, model: Union[str, bytes], preprocessing: Optional[Preprocessing] = None,
                 batch_size: int = DEFAULT_BATCH, num_threads: Optional[int] = None,
                 runtime: Optional[str] = None, xnnpack: bool = True, need_metadata: bool = True):
        t0 = time.perf_counter()
        if isinstance(model, (bytes, bytearray)):
            content, self.source = bytes(model), "the model bytes"
        else:
            with open(model, "rb") as f:
                content, self.source = f.read(), str(model)
        if batch_size < 1:
            raise EvaluationError(f"batch_size must be >= 1, got {batch_size}")
        found = tflite_metadata.inspect(content)
        self.metadata, self.labels = found["record"], found["labels"]
        self.missing, self.problems = found["missing"], found["problems"]
        interpreter, self.runtime = interpreter_class(runtime)
        try:
            self.interpreter = make_interpreter(interpreter, content, num_threads, xnnpack)
        except (ValueError, RuntimeError) as e:
            raise EvaluationError(f"the interpreter cannot load {self.source}: {e}") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise EvaluationError(f"{self.source} has {len(inputs)} inputs and {len(outputs)} outputs; "
                                  f"an image classifier has one of each")
        signature = [int(d) for d in inputs[0].get("shape_signature", inputs[0]["shape"])]
        if preprocessing is None:
            try:
                preprocessing = metadata_preprocessing(found, inputs[0]["shape"], self.source)
            except tflite_metadata.MetadataError:
                if need_metadata:
                    raise
                shape = [int(d) for d in inputs[0]["shape"]]
                preprocessing = Preprocessing(resolution=shape[1], channels=shape[3])
        self.preprocessing = preprocessing
        if len(signature) != 4 or tuple(signature[1:]) != tuple(preprocessing.input_shape):
            raise EvaluationError(f"{self.source} takes input {signature}, but the preprocessing "
                                  f"makes {list(preprocessing.input_shape)} images: they were not "
                                  f"exported together")
        self._input, self._output = inputs[0]["index"], outputs[0]["index"]
        self.batch_size = 1
        if batch_size > 1 and self._allocate(batch_size, signature):
            self.batch_size = batch_size
        elif not self._allocate(1, signature, raise_errors=True):
            raise EvaluationError(f"{self.source} does not take a batch of one image")
        # s: file read, metadata, interpreter construction (delegates applied) and allocation
        self.init_seconds = time.perf_counter() - t0
        self.input = tensor_info(self.interpreter.get_input_details()[0])
        self.output = tensor_info(self.interpreter.get_output_details()[0])

    def _allocate(self, batch: int, signature: List[int], raise_errors: bool = False) -> bool:
        """Resize the input to ``batch`` images; False when the graph cannot take that batch."""
        try:
            self.interpreter.resize_tensor_input(self._input, [batch, *signature[1:]])
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            if raise_errors:
                raise EvaluationError(f"the interpreter cannot prepare {self.source}: {e}") from None
            return False
        if int(self.interpreter.get_output_details()[0]["shape"][0]) == batch:
            return True
        if batch == 1:
            return False
        # A Flatten or Reshape head (V1's, V3's) computes its shape from the input's: the output's
        # batch is known only after a run. One run on zeros tells whether the graph takes the batch.
        try:
            d = self.interpreter.get_input_details()[0]
            self.interpreter.set_tensor(self._input, np.zeros(d["shape"], d["dtype"]))
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self._output).shape[0] == batch
        except (ValueError, RuntimeError):
            return False

    def as_input(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 -> the input tensor's values; gray images go to all three channels
        of an RGB input."""
        if images.ndim == 4 and images.shape[-1] == 1 and self.preprocessing.channels == 3:
            images = np.repeat(images, 3, axis=-1)
        self.preprocessing.check_images(images)
        return self.preprocessing.quantize_input(images, self.input["dtype"], self.input["scale"],
                                                 self.input["zero_point"])

    def _dequantize(self, q: np.ndarray) -> np.ndarray:
        if q.dtype.kind == "f":
            return q.astype(np.float32)
        scale, zero_point = self.output["scale"], self.output["zero_point"]
        x = q.astype(np.float32) - np.float32(zero_point)
        return x * np.float32(scale) if scale else x

    def scores(self, images: np.ndarray, progress: Callable = None) -> np.ndarray:
        """(N, H, W, C) uint8 -> (N, classes) float32 (dequantized for integer outputs)."""
        if len(images):
            self.as_input(images[:1])   # fails here, before any work, on images of another shape
        progress = progress or _NoProgress
        out: List[np.ndarray] = []
        b = self.batch_size
        name = self.source.rsplit("/", 1)[-1]
        with progress(total=len(images), desc=f"top-1 of {name}", unit="img") as bar:
            for start in range(0, len(images), b):
                batch = images[start:start + b]
                n = len(batch)
                if n < b:   # pad the last batch instead of re-allocating the interpreter
                    batch = np.concatenate([batch, np.repeat(batch[-1:], b - n, axis=0)])
                self.interpreter.set_tensor(self._input, self.as_input(batch))
                self.interpreter.invoke()
                out.append(self._dequantize(self.interpreter.get_tensor(self._output)[:n]))
                bar.update(n)
        classes = int(self.output["shape"][-1])
        return np.concatenate(out) if out else np.zeros((0, classes), np.float32)

    def predict(self, images: np.ndarray, progress: Callable = None) -> np.ndarray:
        """(N, H, W, C) uint8 -> (N,) int64 top-1 class indices."""
        return self.scores(images, progress).argmax(axis=1).astype(np.int64)


@dataclass(frozen=True)
class Evaluation:
    predictions: np.ndarray              # (N,) int64 top-1 class index per image
    top1: float                          # fraction of images with prediction == label
    per_class_top1: Dict[str, Optional[float]]   # None for a class with no test images
    images: int
    seconds: float                       # wall time of the whole pass, preprocessing included
    runtime: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"top1": self.top1, "per_class_top1": self.per_class_top1, "images": self.images,
                "seconds": self.seconds, "runtime": self.runtime}


def evaluate(classifier: Classifier, images: np.ndarray, labels: np.ndarray,
             label_names: Sequence[str], progress: Callable = None) -> Evaluation:
    """Top-1 overall and per class of ``classifier`` on uint8 images with int labels."""
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise EvaluationError(f"{len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise EvaluationError("no images to evaluate on")
    classes = int(classifier.output["shape"][-1])
    if len(label_names) != classes:
        raise EvaluationError(f"{len(label_names)} label names for a model with {classes} outputs")
    t0 = time.perf_counter()
    pred = classifier.predict(images, progress)
    return score(pred, labels, label_names, time.perf_counter() - t0, classifier.runtime)


def score(predictions: np.ndarray, labels: np.ndarray, label_names: Sequence[str], seconds: float,
          runtime: Dict[str, str]) -> Evaluation:
    """The Evaluation of per-image top-1 class indices against int labels."""
    labels = np.asarray(labels)
    correct = predictions == labels
    per_class = {}
    for k, name in enumerate(label_names):
        mask = labels == k
        per_class[name] = float(correct[mask].mean()) if mask.any() else None
    return Evaluation(np.asarray(predictions, np.int64), float(correct.mean()), per_class, int(len(labels)),
                      seconds, dict(runtime))


def agreement(predictions: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of images whose top-1 equals the reference's top-1 (e.g. the float32 .tflite's)."""
    if predictions.shape != reference.shape:
        raise EvaluationError(f"cannot compare {predictions.shape} predictions with {reference.shape}")
    return float(np.mean(predictions == reference))
