"""Convert a trained Keras MobileNet into float and quantized .tflite variants.

    python -m quantize --model build/model.keras --out build/quantize

Writes ``OUT/<variant>.tflite`` for each variant and, last, ``OUT/quantize.json``:
the recipe of each (converter settings, calibration images, sha256), the source
model's sha256 and model.json, and tool versions. They are published as one set
(``pipeline.publish``): written into ``.quantize.<pid>.partial/`` beside OUT and
swapped in with OUT in one rename, while the lock of OUT's parent (the ``build``
folder that train and export lock too) keeps a second writer out. A kill or a
full disk leaves the previous complete set. ``python -m export`` takes
it from there. The path is Keras -> SavedModel (``model.export``) ->
``tf.lite.TFLiteConverter.from_saved_model``, the route that stays quiet with
Keras 3 (``from_keras_model`` floods the log).

Which variant when:
* ``dynamic_int8`` needs no data and shrinks the file about 3x (tensors under
  1024 weights stay float), but activations stay float and are quantized on
  the fly inside each op: it only speeds up CPUs, and only the big matmuls.
  Use it when no representative data is at hand.
* ``int8`` fixes every activation range in advance from the calibration
  split, so every op runs in integer arithmetic: the fastest CPU kernels and
  the only variant NPUs, DSPs and Edge TPUs accept. The calibration images come
  from the training images held out for it, never from test: ranges fitted to
  the test images would flatter the int8 model's test accuracy.
* ``--max-drop PTS`` puts int8 under an accuracy budget measured on the
  validation split: over it, the most sensitive layers stay float32
  (``quantize.budget``), recorded as ``float_layers`` and ``accuracy_budget``.
* ``int16x8`` keeps int8 weights but int16 activations: close to float accuracy
  when int8 activations lose too much, but TFLite runs it on reference kernels,
  tens of times slower than int8 on a CPU (70x for the default model here).
  Ops with no 16x8 kernel (MobileNet V3's HARD_SWISH, in TensorFlow 2.21) stay
  float32 between a DEQUANTIZE and a QUANTIZE, TFLite's documented fallback for
  16x8; quantize.json lists them as the variant's ``float_ops``. full int8 has
  no such fallback: an op without an int8 kernel is an error.

Every variant takes what an app feeds (``quantize.app_input``): RGB, with the
luminance conversion as the first op of a grayscale model; ``int8`` takes raw
0-255 pixels (uint8 by default) and normalizes inside. Each variant's entry in
quantize.json says what its input is (``input``).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from imagedata.dataset import Dataset
from pipeline import publish, quiet
from quantize import app_input, files, graph
from quantize.app_input import InputForm
from quantize.config import IO, Granularity, QuantizeConfig, Variant
from quantize.source import Source, load_data, load_keras, load_source

SUMMARY = "quantize.json"
CONVERTER_API = "tf.lite.TFLiteConverter.from_saved_model"


class QuantizeError(RuntimeError):
    pass


class CalibrationError(QuantizeError):
    pass


class ConversionError(QuantizeError):
    pass


def calibration_images(dataset: Dataset, source: Source, size: int) -> np.ndarray:
    """The first ``size`` images of the calibration split, (N, H, W, C) uint8, checked."""
    split = dataset.calibration
    if len(split) == 0:
        raise CalibrationError("the calibration split is empty: int8 and int16x8 need representative "
                               "images to fix activation ranges. Use data with more images per class "
                               "(the split is carved from the training images), or build only "
                               "--variants float32,float16,dynamic_int8")
    want = tuple(source.preprocessing.input_shape)
    if split.x.ndim != 4 or tuple(split.x.shape[1:]) != want or split.x.dtype != np.uint8:
        raise CalibrationError(f"calibration images are {split.x.shape} {split.x.dtype} but the model "
                               f"takes (N, {', '.join(map(str, want))}) uint8 images: the data does not "
                               f"match the model (pass --data with images for this model, or retrain)")
    return split.x[:size]


def _representative_dataset(images: np.ndarray, form: InputForm, progress):
    """Yields one image at a time as the converted model takes it, the way the calibrator feeds it."""
    def generate():
        with progress(total=len(images), desc="calibrating", unit="img", leave=False) as bar:
            for i in range(len(images)):
                yield [form.feed(images[i:i + 1])]
                bar.update(1)
    return generate


def _settings(variant: Variant, config: QuantizeConfig, n_calibration: int) -> dict:
    """The converter options of one variant, as recorded in quantize.json."""
    s = {"optimizations": [], "supported_ops": ["TFLITE_BUILTINS"], "supported_types": [],
         "inference_input_type": "float32", "inference_output_type": "float32"}
    if variant is Variant.FLOAT32:
        return s
    s["optimizations"] = ["DEFAULT"]
    if variant is Variant.FLOAT16:
        s["supported_types"] = ["float16"]
        return s
    # Only int8 follows --granularity: the 16x8 kernels need per-channel weights,
    # and dynamic-range kernels gain little from fewer scales.
    s["granularity"] = (config.granularity if variant is Variant.INT8 else Granularity.PER_CHANNEL).value
    if variant is Variant.INT8:
        s["supported_ops"] = ["TFLITE_BUILTINS_INT8"]
        s["inference_input_type"] = s["inference_output_type"] = config.io.value
    elif variant is Variant.INT16X8:
        # TFLITE_BUILTINS: an op without a 16x8 kernel stays float32 (recorded as float_ops).
        s["supported_ops"] = ["EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8", "TFLITE_BUILTINS"]
    if variant.calibrated:
        s["calibration"] = {"split": "calibration", "images": n_calibration}
    return s


def _converter(saved_model: Path, variant: Variant, config: QuantizeConfig, calibration,
               form: InputForm | None, progress):
    import tensorflow as tf
    c = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if variant is Variant.FLOAT32:
        return c
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant is Variant.FLOAT16:
        c.target_spec.supported_types = [tf.float16]
        return c
    if variant is Variant.INT8 and config.granularity is Granularity.PER_TENSOR:
        if not hasattr(c, "_experimental_disable_per_channel"):
            raise ConversionError(f"TensorFlow {tf.__version__}'s converter has no per-tensor switch; "
                                  f"use --granularity per_channel")
        c._experimental_disable_per_channel = True
    if variant.calibrated:
        if calibration is None or form is None:
            raise CalibrationError(f"{variant.value} needs calibration images and their input form")
        c.representative_dataset = _representative_dataset(calibration, form, progress or quiet.progress)
    if variant is Variant.INT8:
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = {IO.INT8: tf.int8, IO.UINT8: tf.uint8, IO.FLOAT32: tf.float32}[config.io]
        c.inference_input_type = c.inference_output_type = io
    elif variant is Variant.INT16X8:
        c.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS]
    return c


def _error_lines(e: Exception, n: int = 4) -> str:
    """The gist of a converter error: its error lines without the MLIR locations,
    and the list of ops TFLite has no kernel for, if it names them."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    gist = []
    for ln in lines:
        if ln.startswith(("TF Select ops:", "Flex ops:", "Custom ops:")):
            gist.append(ln)
        elif "error:" in ln:
            # '<unknown>:0: error: loc(callsite(...)): what went wrong' -> 'what went wrong'
            text = ln.split("error:", 1)[1].strip()
            gist.append(text.rsplit(")): ", 1)[-1] if text.startswith("loc(") else text)
    gist = list(dict.fromkeys(g for g in gist if g and not g.endswith(":"))) or lines[:1]
    return " | ".join(gist[:n]).rstrip(".") or type(e).__name__


def float_fallback(model: bytes) -> list[dict]:
    """The ops of an int16x8 model that have no 16x8 kernel and compute in float32."""
    return [{"op": op.name, "tensor": op.tensor} for op in graph.float_ops(model)]


def _check_integer(model: bytes, variant: Variant, config: QuantizeConfig, float_layers=()) -> None:
    """Raise unless every op of an int8 model is integer, with the requested I/O types.

    ``float_layers``: output tensor names of the ops an accuracy budget kept in
    float32 on purpose; those, and only those, may compute in float.
    """
    allowed = set(float_layers)
    left = [op for op in graph.float_ops(model) if op.tensor not in allowed]
    if left:
        names = ", ".join(f"{op.name} ({op.tensor})" for op in left[:8])
        raise ConversionError(
            f"{variant.value}: {len(left)} op(s) have no {variant.value} kernel, and the converter left "
            f"them in float32: {names}. Replace those layers with ones TFLite quantizes "
            f"(Conv2D, DepthwiseConv2D, Dense, ReLU/ReLU6, Add, pooling, softmax), or leave "
            f"{variant.value} out of --variants (dynamic_int8 and float16 keep float activations)")
    if variant is Variant.INT8:
        inputs, outputs = graph.io_types(model)
        want = config.io.value
        if set(inputs) != {want} or set(outputs) != {want}:
            raise ConversionError(f"int8: asked for {want} input and output tensors, the converter "
                                  f"produced {inputs} -> {outputs}")


def quantize_calibrated(calibrated: bytes, config: QuantizeConfig, denylist=()) -> bytes:
    """The converter's own last step for full int8 (``mlir_quantize``) on a calibrated model, with
    the recipe's I/O type and weight granularity; ``denylist``: output tensors of ops kept in float32."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert
    io = {IO.INT8: tf.int8, IO.UINT8: tf.uint8, IO.FLOAT32: tf.float32}[config.io]
    model = tf_convert.mlir_quantize(calibrated, disable_per_channel=config.granularity is Granularity.PER_TENSOR,
                                     input_data_type=io, output_data_type=io,
                                     denylisted_nodes=list(denylist) or None)
    return tf_convert.deduplicate_readonly_buffers(model)


def convert(saved_model: Path, variant: Variant, config: QuantizeConfig,
            calibration: np.ndarray | None = None, form: InputForm | None = None,
            progress=None) -> bytes:
    """One variant's .tflite bytes from a SavedModel of ``app_input.wrap(model, form)``; raises
    ConversionError, saying what to do.

    ``calibration`` (N, H, W, C) uint8, as the trained model takes it, is needed by int8 and int16x8.
    Full int8 is calibrated, then quantized in a second step (what ``converter.convert()`` does
    inside), so that a pixel input's range can be pinned to [0, 255] in between.
    """
    converter = _converter(saved_model, variant, config, calibration, form, progress)
    pinned = variant is Variant.INT8 and form is not None and form.pixels
    try:
        if pinned:
            converter._experimental_calibrate_only = True
            model = quantize_calibrated(app_input.pin_pixel_range(converter.convert()), config)
        else:
            model = converter.convert()
    except Exception as e:  # the converter raises ConverterError, ValueError, RuntimeError...
        fix = ("replace that layer with TFLite builtin ops (every variant needs them)"
               if variant is Variant.FLOAT32 else
               f"replace that layer, or leave {variant.value} out of --variants")
        raise ConversionError(f"converting to {variant.value} failed: {_error_lines(e)}. The model "
                              f"has an op or shape TFLite cannot handle as {variant.value}: {fix}") from None
    if variant is Variant.INT8:
        _check_integer(model, variant, config)
    return model


def _export_saved_model(model, directory: Path) -> None:
    try:
        model.export(str(directory), format="tf_saved_model", verbose=False)
    except Exception as e:  # noqa: BLE001 -- Keras and TF raise many types here
        raise ConversionError(f"exporting the Keras model to a SavedModel failed: {e}") from None


class SavedModels:
    """One SavedModel per input form (``app_input``), exported the first time it is asked for."""

    def __init__(self, model, folder: Path):
        self.model, self.folder, self.paths = model, Path(folder), {}

    def __call__(self, form: InputForm) -> Path:
        if form.key not in self.paths:
            path = self.folder / f"saved_model_{form.channels}ch{'_pixels' if form.pixels else ''}"
            _export_saved_model(app_input.wrap(self.model, form), path)
            self.paths[form.key] = path
        return self.paths[form.key]


def _within_budget(int8: bytes, built: dict, saved: SavedModels, config: QuantizeConfig,
                   calibration: np.ndarray, source: Source, dataset: Dataset, progress) -> tuple[bytes, dict]:
    """``int8``, or the selective model ``quantize.budget`` picks, and the budget's record."""
    from quantize import budget
    from quantize.debug import Calibrated, keras_parameter_counts, output_layer

    int8_form = app_input.form(Variant.INT8, config, source.preprocessing)
    float_form = app_input.form(Variant.FLOAT32, config, source.preprocessing)
    float32 = built.get(Variant.FLOAT32) or convert(saved(float_form), Variant.FLOAT32, config)
    chosen, record = budget.apply(
        lambda: Calibrated(saved(int8_form), config, calibration, int8_form, progress),
        int8, float32, dataset.val, list(dataset.labels), int8_form.preprocessing, config.max_drop,
        keras_parameter_counts(app_input.wrap(saved.model, int8_form)), progress, output_layer(saved.model),
        reference_preprocessing=float_form.preprocessing)
    if record["float_layers"]:
        _check_integer(chosen, Variant.INT8, config, [f["tensor"] for f in record["float_layers"]])
    return chosen, record


def run(config: QuantizeConfig, model_path: Path, out: Path, dataset: Dataset | None = None,
        data: str | None = None, progress=None) -> dict:
    """Convert ``model_path`` into ``config.variants`` under ``out``; returns the quantize.json dict.

    ``dataset`` skips loading the data (tests pass tiny ones); ``data`` loads
    another location than the one in model.json; ``progress`` is tqdm-like.
    Everything that can be checked before converting is: a bad model, data or
    calibration set writes nothing.
    """
    progress = progress or quiet.progress
    out = Path(out)
    source = load_source(model_path)
    model = load_keras(source)
    calibration, calib_info = None, None
    if config.max_drop is not None and dataset is None:   # the budget's validation split
        dataset = load_data(source.record, data, progress)
    if config.needs_calibration:
        if dataset is None:
            dataset = load_data(source.record, data, progress)
        calibration = calibration_images(dataset, source, config.calibration_size)
        calib_info = {"split": "calibration", "images": int(len(calibration)),
                      "available": int(len(dataset.calibration)),
                      "sha256": files.sha256(np.ascontiguousarray(calibration).tobytes()),
                      "data": {k: v for k, v in dataset.describe().items() if k != "labels"}}
    if config.max_drop is not None and len(dataset.val) == 0:
        from quantize.budget import BudgetError
        raise BudgetError("the validation split is empty: --max-drop measures top-1 on it (never on "
                          "test). Use data with more images, or leave --max-drop out")
    with publish.lock(out.parent), publish.staged(out, SUMMARY, folder=True, point="quantize") as stage:
        summary = _convert_all(config, source, model, calibration, calib_info, dataset, stage, progress)
        files.write_json(stage / SUMMARY, summary)
    return summary


def _convert_all(config: QuantizeConfig, source: Source, model, calibration, calib_info, dataset,
                 stage: Path, progress) -> dict:
    """Every variant into ``stage``; returns the quantize.json dict."""
    import tensorflow as tf

    from train.fit import machine, versions

    n_calibration = 0 if calibration is None else len(calibration)
    entries, budget, built = [], None, {}
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        saved = SavedModels(model, Path(tmp))
        with progress(total=len(config.variants), desc="converting", unit="variant") as bar:
            for variant in config.variants:
                t0 = time.perf_counter()
                form = app_input.form(variant, config, source.preprocessing)
                tflite = convert(saved(form), variant, config, calibration, form, progress)
                built[variant] = tflite
                extra = {}
                if variant is Variant.INT8 and config.max_drop is not None:
                    tflite, budget = _within_budget(tflite, built, saved, config, calibration,
                                                    source, dataset, progress)
                    extra = {"float_layers": budget["float_layers"]}
                path = stage / f"{variant.value}.tflite"
                path.write_bytes(tflite)
                publish.test_hook("quantize-variant", len(entries) + 1)
                settings = _settings(variant, config, n_calibration)
                if extra.get("float_layers"):
                    settings["float_layers"] = [f["tensor"] for f in extra["float_layers"]]
                if variant is Variant.INT16X8 and float_fallback(tflite):
                    settings["float_ops"] = float_fallback(tflite)
                entries.append({"name": variant.value, "file": path.name, "size_bytes": len(tflite),
                                "sha256": files.sha256(tflite), "converter": settings, "input": form.to_dict(),
                                "seconds": time.perf_counter() - t0, **extra})
                bar.update(1)
    summary = {
        "artifact": SUMMARY,
        "config": config.to_dict(),
        "source": source.summary(),
        "calibration": calib_info,
        "variants": entries,
        **({"accuracy_budget": budget} if budget is not None else {}),
        "converter": {"api": CONVERTER_API, "tensorflow": tf.__version__},
        "versions": versions(),
        "machine": machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return summary
