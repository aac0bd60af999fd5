"""Per-layer quantization error of the full-int8 model: which layers int8 hurts.

    python -m quantize debug --quantized build/quantize --out build/quant_debug

Rebuilds the ``int8`` variant exactly as ``python -m quantize`` did (its recipe
and calibration images are read from ``quantize.json``), then runs TF's
``QuantizationDebugger`` model: every quantized op gets a float twin fed with
the same (dequantized) input, and a NumericVerify op records the difference
between the twin's output and the dequantized int8 output. The error is
therefore each layer's own, not the sum of the layers before it.

Per layer (a TFLite op, named after the Keras layer it came from), over the
calibration images:

* ``rmse_over_scale``: RMSE of that difference in units of the output's
  quantization step. Rounding alone gives 1/sqrt(12) = 0.29; much more means
  weights or clipping lose information (per-tensor weights with one outlier
  channel are the classic case). Layers are sorted by it, worst first;
* ``max_abs_error``: the largest absolute difference seen, in float units;
* ``rmse``, ``mean_error`` (bias), ``scale``, ``zero_point``, ``elements``.

What it cannot see: an activation whose range is so wide that int8 rounds its
small channels to zero looks normal *in units of its own scale*; the damage
shows in the layers that read it (their weights or inputs). ``--max-drop``
(``quantize.budget``) therefore measures accuracy after every change instead of
trusting the ranking alone.

Writes ``OUT/quant_debug.json`` (rows and provenance), ``OUT/quant_debug.md``
(the table) and ``OUT/quant_debug.png`` (the plot), each under a temporary
name first.
"""
from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from quantize import files, graph
from quantize.config import QuantizeConfig, Variant

REPORT = "quant_debug"
ROUNDING_ONLY = 1 / math.sqrt(12)   # RMSE/scale of pure rounding to a uniform grid
NUMERIC_VERIFY = "NumericVerify"


@dataclass(frozen=True)
class LayerError:
    layer: str             # Keras layer name (the one holding the weights when several fused)
    op: str                # TFLite op, e.g. CONV_2D
    tensor: str            # the op's output tensor name: what a deny-list names
    rmse_over_scale: float
    rmse: float            # float units
    max_abs_error: float   # float units, maximum over every element of every image
    mean_error: float      # float units; the sign says which way int8 is biased
    scale: float
    zero_point: int
    elements: int          # per image

    def to_dict(self) -> dict:
        return asdict(self)


def layer_name(tensor: str, keras_layers: dict | None = None, output_layer: str | None = None) -> str:
    """The Keras layer behind a TFLite tensor name.

    Fused names list every layer folded into the op, e.g.
    ``model/conv_dw_1_relu_1/Relu6;model/conv_dw_1_bn_1/...;model/conv_dw_1_1/depthwise``;
    the exported graph adds ``_1`` to each Keras name. With ``keras_layers``
    ({name: parameter count}) the layer with the most parameters wins (the
    convolution, not its batch norm or activation); without, the first.
    The model's output tensor is named after the signature (``StatefulPartitionedCall_1:0``,
    the softmax's): it is the ``output_layer``'s, the Keras layer that makes the model's output.
    """
    found = []
    for part in tensor.split(";"):
        pieces = part.split("/")
        if len(pieces) < 2:
            continue
        name = pieces[1]
        stripped = re.sub(r"_\d+$", "", name)
        if keras_layers is not None:
            name = stripped if stripped in keras_layers else (name if name in keras_layers else None)
        else:
            name = stripped
        if name and name not in found:
            found.append(name)
    if not found:
        return output_layer if output_layer and "/" not in tensor else tensor
    if keras_layers:
        return max(found, key=lambda n: keras_layers.get(n, 0))   # first of equals: max is stable
    return found[0]


def _verify_ops(model_bytes: bytes) -> list[tuple[int, int, str]]:
    """(quantized tensor index, NumericVerify output index, producing op name) per NumericVerify op."""
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    g = model.subgraphs[0]
    producer = {}
    found = []
    for op in g.operators or []:
        name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        if name == "CUSTOM":
            name = (model.operatorCodes[op.opcodeIndex].customCode or b"").decode()
        for t in op.outputs if op.outputs is not None else []:
            producer[int(t)] = name
        if name == NUMERIC_VERIFY:
            found.append((int(op.inputs[0]), int(op.outputs[0])))
    return [(q, out, producer.get(q, "?")) for q, out in found]


def _plain_name(debug_name: str, names: set) -> str:
    """The name a quantized tensor has in the model without NumericVerify ops (what a
    deny-list names): the debug model appends one digit to it (``...Squeeze1`` -> ``...Squeeze11``)."""
    if debug_name in names:
        return debug_name
    if debug_name[-1:].isdigit() and debug_name[:-1] in names:
        return debug_name[:-1]
    return debug_name


def _interpreter(model_bytes: bytes):
    import tensorflow as tf
    with warnings.catch_warnings():   # tf.lite.Interpreter's deprecation notice: only TF's
        warnings.simplefilter("ignore")  # interpreter has the NumericVerify kernel
        return tf.lite.Interpreter(model_content=model_bytes, experimental_preserve_all_tensors=True)


class Calibrated:
    """The int8 recipe calibrated once; quantize it with any deny-list, or measure its layers.

    Calibration (running the representative images through the float model to
    record every activation's range) is the slow part; quantizing a calibrated
    model with another deny-list takes a fraction of a second, which is what
    makes the greedy search of ``quantize.budget`` affordable.
    """

    def __init__(self, saved_model: Path, config: QuantizeConfig, calibration: np.ndarray,
                 form, progress=None):
        import tensorflow as tf

        from quantize import app_input
        from quantize.convert import _converter
        converter = _converter(saved_model, Variant.INT8, config, calibration, form, progress)
        self.config = config
        self.form = form                               # quantize.app_input.InputForm of saved_model
        self.preprocessing = form.preprocessing        # what a consumer feeds the int8 model
        self.calibration = calibration
        # The debugger calibrates through the same converter (same representative dataset and
        # per-tensor switch) and keeps the calibrated, not yet quantized, model.
        with warnings.catch_warnings():   # its tf.lite.Interpreter's deprecation notice
            warnings.simplefilter("ignore")
            self.debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=lambda: iter(()),
                debug_options=tf.lite.experimental.QuantizationDebugOptions())
        if form.pixels:   # as quantize.convert does: the pixel input's range is [0, 255]
            self.debugger.calibrated_model = app_input.pin_pixel_range(self.debugger.calibrated_model)

    def quantize(self, denylist=()) -> bytes:
        """The int8 model with the ops producing the ``denylist`` tensors kept in float32,
        and the I/O types of the recipe: the converter's own final step (``mlir_quantize``)."""
        from quantize.convert import quantize_calibrated
        return quantize_calibrated(self.debugger.calibrated_model, self.config, denylist)

    def layer_errors(self, images: np.ndarray | None = None, keras_layers: dict | None = None,
                     batch_size: int = 32, progress=None, output_layer: str | None = None) -> list[LayerError]:
        """Per-layer error over ``images`` (default: the calibration images), worst first;
        ``keras_layers`` and ``output_layer``: see layer_name()."""
        from pipeline import quiet
        progress = progress or quiet.progress
        images = self.calibration if images is None else images
        debug_model = self.debugger.get_debug_quantized_model()
        verify = _verify_ops(debug_model)
        if not verify:
            raise RuntimeError("the debug model has no NumericVerify op: this TensorFlow's "
                               "QuantizationDebugger did not instrument the int8 model")
        it = _interpreter(debug_model)
        inp = it.get_input_details()[0]
        details = {d["index"]: d for d in it.get_tensor_details()}
        n_layers = len(verify)
        sq, total, peak, count = (np.zeros(n_layers, np.float64), np.zeros(n_layers, np.float64),
                                  np.zeros(n_layers, np.float64), np.zeros(n_layers, np.int64))
        allocated = None
        with progress(total=len(images), desc="per-layer error", unit="img", leave=False) as bar:
            for start in range(0, len(images), batch_size):
                batch = self.form.feed(images[start:start + batch_size])
                if allocated != len(batch):
                    it.resize_tensor_input(inp["index"], batch.shape)
                    it.allocate_tensors()
                    allocated = len(batch)
                it.set_tensor(inp["index"], batch.astype(inp["dtype"]))
                it.invoke()
                for k, (_, out, _) in enumerate(verify):
                    d = it.get_tensor(out).astype(np.float64)   # dequantized int8 - float twin
                    sq[k] += np.sum(d * d)
                    total[k] += np.sum(d)
                    peak[k] = max(peak[k], float(np.max(np.abs(d))) if d.size else 0.0)
                    count[k] += d.size
                bar.update(len(batch))
        names = {op.tensor for op in graph.ops(self.quantize())}
        rows = []
        for k, (q, _, op) in enumerate(verify):
            qp = details[q]["quantization_parameters"]
            scale = float(qp["scales"][0]) if len(qp["scales"]) else 0.0
            zero_point = int(qp["zero_points"][0]) if len(qp["zero_points"]) else 0
            n = max(int(count[k]), 1)
            rmse = math.sqrt(sq[k] / n)
            tensor = _plain_name(details[q]["name"], names)
            rows.append(LayerError(
                layer=layer_name(tensor, keras_layers, output_layer), op=op, tensor=tensor,
                rmse_over_scale=rmse / scale if scale else float("inf"), rmse=rmse,
                max_abs_error=float(peak[k]), mean_error=float(total[k] / n), scale=scale,
                zero_point=zero_point, elements=int(count[k] // max(len(images), 1))))
        return sort_worst_first(rows)


def sort_worst_first(rows: list[LayerError]) -> list[LayerError]:
    return sorted(rows, key=lambda r: (-r.rmse_over_scale, -r.max_abs_error, r.tensor))


def keras_parameter_counts(model) -> dict:
    return {layer.name: int(layer.count_params()) for layer in model.layers}


def output_layer(model) -> str:
    """The Keras layer that makes the model's (single) output: ``predictions`` in MobileNet."""
    return model.outputs[0]._keras_history.operation.name


# ----------------------------------------------------------------------------- the report


def table(rows: list[LayerError], float_layers=()) -> str:
    """Markdown, worst first; layers the budget kept in float32 are marked."""
    kept = set(float_layers)
    out = ["| # | layer | op | RMSE / scale | max abs error | RMSE | mean error | scale |",
           "|---:|---|---|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(rows, 1):
        name = f"{r.layer} (kept float32)" if r.tensor in kept else r.layer
        out.append(f"| {i} | {name} | {r.op} | {r.rmse_over_scale:.3f} | {r.max_abs_error:.4g} | "
                   f"{r.rmse:.4g} | {r.mean_error:+.3g} | {r.scale:.4g} |")
    return "\n".join(out)


def plot(rows: list[LayerError], path: Path, title: str) -> None:
    """Two bar charts, worst layer on top: RMSE/scale (with the rounding-only line) and max |error|."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{r.layer} ({r.op.lower()})" for r in rows][::-1]
    y = np.arange(len(rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.28 * len(rows) + 1.5)), sharey=True)
    a.barh(y, [r.rmse_over_scale for r in rows][::-1], color="tab:red")
    a.axvline(ROUNDING_ONLY, color="k", ls="--", lw=1, label="rounding only (1/\u221a12)")
    a.set_xlabel("RMSE / quantization scale")
    a.set_yticks(y, names, fontsize=7)
    a.legend(loc="lower right", fontsize=8)
    b.barh(y, [r.max_abs_error for r in rows][::-1], color="tab:blue")
    b.set_xlabel("max |int8 - float| (float units)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(rows: list[LayerError], out: Path, info: dict, float_layers=()) -> dict:
    """OUT/quant_debug.{json,md,png}; returns the JSON record."""
    out = Path(out)
    record = {"artifact": f"{REPORT}.json", **info,
              "metric": {"rmse_over_scale": "RMSE of (dequantized int8 - float) of the op's output, "
                                            "in quantization steps; 0.29 = rounding only",
                         "max_abs_error": "largest |dequantized int8 - float|, float units",
                         "mode": "layer by layer: each float twin reads the same dequantized input"},
              "rounding_only": ROUNDING_ONLY,
              "layers": [r.to_dict() for r in rows],
              "float_layers": list(float_layers)}
    n = info.get("images", "?")
    md = (f"# Per-layer int8 error, worst first\n\n{table(rows, float_layers)}\n\n"
          f"Over {n} calibration images; RMSE / scale of 0.29 is rounding alone. "
          f"{info.get('tensorflow_note', '')}\n")
    plot(rows, out / f"{REPORT}.png", f"per-layer int8 error over {n} calibration images")
    files.write_bytes(out / f"{REPORT}.md", md.encode("utf-8"))
    files.write_json(out / f"{REPORT}.json", record)
    return record


# ----------------------------------------------------------------------------- the command


class DebugError(ValueError):
    pass


def run(quantized: Path, out: Path, images: int | None = None, dataset=None, data: str | None = None,
        progress=None) -> dict:
    """The per-layer error of ``quantized``/int8.tflite's recipe, written to ``out``.

    ``images`` limits the calibration images the statistics run over (default:
    all the recipe used); ``dataset`` skips loading the data (tests).
    """
    import tempfile

    from pipeline import publish, quiet
    from quantize import app_input
    from quantize.convert import SUMMARY, _export_saved_model, calibration_images
    from quantize.source import load_keras, load_source

    progress = progress or quiet.progress
    quantized = Path(quantized)
    summary_path = quantized / SUMMARY
    rebuild = f"build the int8 model first (make export, or python -m quantize --out {quantized})"
    try:
        summary = publish.read_record(summary_path, SUMMARY, rebuild)
    except publish.PublishError as e:
        raise DebugError(str(e)) from None
    if not isinstance(summary.get("variants"), list) or not all(isinstance(v, dict) for v in summary["variants"]):
        raise DebugError(f"'{summary_path}' has no list of variants (written by another version?): {rebuild}")
    int8 = next((v for v in summary["variants"] if v.get("name") == Variant.INT8.value), None)
    if int8 is None:
        raise DebugError(f"'{summary_path}' lists no int8 variant: the per-layer error is that of the "
                         f"full-int8 model; quantize with int8 in --variants (make export VARIANTS=float32,int8)")
    if not isinstance(summary.get("source"), dict) or not isinstance(summary.get("config"), dict) \
            or not {"file", "sha256"} <= summary["source"].keys():
        raise DebugError(f"'{summary_path}' has no source model or config (written by another version?): "
                         f"{rebuild}")
    config = QuantizeConfig.from_dict(summary["config"])
    source = load_source(Path(summary["source"]["file"]))
    if source.sha256 != summary["source"]["sha256"]:
        raise DebugError(f"'{source.model_path}' changed since {summary_path} was written: "
                         f"quantize again (make export) so the int8 model and its error belong together")
    if images is not None and images < 1:
        raise DebugError(f"images must be >= 1, got {images}")
    model = load_keras(source)
    if dataset is None:
        from quantize.source import load_data
        dataset = load_data(source.record, data, progress)
    n = summary["calibration"]["images"] if summary.get("calibration") else config.calibration_size
    calibration = calibration_images(dataset, source, n)
    if summary.get("calibration") and files.sha256(np.ascontiguousarray(calibration).tobytes()) \
            != summary["calibration"]["sha256"]:
        raise DebugError("the calibration images differ from the ones quantize.json records (other "
                         "data?): quantize again so the error is measured on the same int8 model")
    import tensorflow as tf
    t0 = time.perf_counter()
    form = app_input.form(Variant.INT8, config, source.preprocessing)
    wrapped = app_input.wrap(model, form)   # the graph quantize converted, luminance and normalization included
    with tempfile.TemporaryDirectory(prefix="quant-debug-") as tmp:
        _export_saved_model(wrapped, Path(tmp) / "saved_model")
        calibrated = Calibrated(Path(tmp) / "saved_model", config, calibration, form, progress)
        subset = calibration if images is None else calibration[:images]
        rows = calibrated.layer_errors(subset, keras_parameter_counts(wrapped), progress=progress,
                                       output_layer=output_layer(model))
    float_layers = [f["tensor"] for f in int8.get("float_layers", [])]
    info = {"images": int(len(subset)), "split": "calibration",
            "int8": {"file": str(quantized / int8["file"]), "sha256": int8["sha256"],
                     "recipe": config.to_dict(), "float_layers": int8.get("float_layers", [])},
            "input": form.to_dict(),
            "source": {"file": str(source.model_path), "sha256": source.sha256},
            "tensorflow": tf.__version__, "seconds": time.perf_counter() - t0,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return write_report(rows, out, info, float_layers)
