"""Turn the quantized variants into self-describing deliverables, and measure them.

    python -m export run --out build          # reads build/quantize/quantize.json

Writes, each under a temporary name first:
* ``OUT/<variant>.tflite``: the converter's model, batch 1, plus the standard
  TFLite Model Metadata (``export.model_metadata``: name, license, the input's
  color space and normalization, the labels as a packed file), which MediaPipe
  Tasks and the Support Library read, and beside it this project's record (the
  preprocessing, model configuration and provenance), so an app, a Pi or a
  phone needs nothing else (``android_bench.device.tflite_metadata``). Metadata
  that disagrees with the model is refused;
* ``OUT/labels.txt``: one label per line, in class-index order;
* ``OUT/eval_pack.npz``: test images as uint8 (N, H, W, C) ``x``, int64 ``y``,
  ``labels`` and the ``preprocessing`` JSON, for the device runner;
* ``OUT/manifest.json``, last: for each variant its file, size, sha256, I/O
  types and quantization, and top-1 on the whole test split measured here by a
  real interpreter (``android_bench.device.evaluate``, the same code the device
  runs), per class and as agreement with the float32 .tflite's top-1.

They are published as one set (``pipeline.publish``) while ``OUT/.lock`` is held:
everything is written and measured in ``OUT/.export.<pid>.partial/``; then the old
manifest.json is removed, the files are renamed into OUT one by one, and the new
manifest.json comes last. OUT also holds model.keras, train/ and quantize/, so it
cannot be swapped as a folder: in the short window without a manifest, consumers
(``export.verify``) say there is no complete set and that ``make export`` rebuilds
it; an old manifest never describes a new file. Consumers check each file's size and
sha256 and the eval pack against the manifest before they use them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from android_bench.device.evaluate import Classifier, agreement, evaluate
from android_bench.device.tflite_metadata import FORMAT, METADATA_NAME
from export import model_metadata
from export.config import ExportConfig
from export.metadata import pack
from export.verify import SCHEMA_VERSION
from imagedata.dataset import Dataset, Split
from imagedata.preprocess import Preprocessing
from pipeline import publish
from quantize import files
from quantize.convert import SUMMARY
from quantize.source import load_data

MANIFEST = "manifest.json"
LABELS = "labels.txt"
EVAL_PACK = "eval_pack.npz"
MODEL_KEYS = ("arch", "alpha", "resolution", "output_stride", "channels")
AUTHOR = "mobilenet-deploy"
WHAT = {"float32": "float32 weights and activations", "float16": "float16 weights, float32 arithmetic",
        "dynamic_int8": "int8 weights, activations quantized on the fly", "int8": "int8 weights and activations",
        "int16x8": "int8 weights, int16 activations"}


class ExportError(RuntimeError):
    pass


def check_labels(labels: list) -> None:
    """Raise, naming the label, unless every label is non-empty, on one line, and unique: the
    label file an app reads holds one label per line, and a repeated name makes two classes one."""
    seen: dict = {}
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise ExportError(f"label {i} is empty ({label!r}): every class needs a name. The labels come from "
                              f"model.json (the class folders' names): rename the class and train again")
        if "\n" in label or "\r" in label:
            raise ExportError(f"label {i} {label!r} contains a line break: the label file an app reads has one "
                              f"label per line. Rename the class and train again")
        if label in seen:
            raise ExportError(f"label {label!r} appears twice (classes {seen[label]} and {i}): an app could not "
                              f"tell them apart. Rename one class and train again")
        seen[label] = i


def input_form(source: dict, variant: dict) -> dict:
    """What the variant's input takes (quantize.app_input); a recipe from before it: the trained input."""
    if "input" in variant:
        return variant["input"]
    p = Preprocessing.from_dict(source["preprocessing"])
    return {"channels": p.channels, "color": "rgb" if p.channels == 3 else "grayscale", "luminance": False,
            "luminance_weights": None, "normalization_in_graph": False, "preprocessing": p.to_dict(),
            "trained": p.to_dict()}


def model_card(summary: dict, variant: dict, raw: bytes, config: ExportConfig) -> model_metadata.Card:
    """What the standard metadata of ``variant`` says: from quantize.json and the converted model."""
    source = summary["source"]
    cfg = source.get("config", {})
    form = input_form(source, variant)
    p = Preprocessing.from_dict(form["preprocessing"])
    dtype = model_metadata.io_tensors(raw)[0]["dtype"]
    size = f"{p.resolution}x{p.resolution}"
    color = "RGB" if p.channels == 3 else "grayscale"
    if form["normalization_in_graph"]:
        values = {"uint8": "uint8 pixels 0-255 as they are", "int8": "int8, pixel - 128",
                  "float32": "float32 pixels 0-255"}.get(dtype, dtype)
        inside = "normalizes them" + (" and converts them to luminance" if form["luminance"] else "")
    else:
        values = f"{dtype}, (pixel - {p.mean:g}) / {p.std:g}"
        inside = "converts them to luminance" if form["luminance"] else ""
    arch = f"MobileNet {str(cfg['arch']).upper()} {cfg.get('alpha')}" if cfg.get("arch") else "image classifier"
    test = source.get("test_top1")
    data = Path(str(cfg.get("data", "its data"))).name
    return model_metadata.Card(
        name=f"{arch} {size} {variant['name']}",
        description=(f"Classifies a {size} {color} image into one of {len(source['labels'])} classes. {arch}, "
                     f"trained by {AUTHOR} on {data}" + (f" ({100 * test:.2f}% test top-1 in Keras)" if test else "")
                     + f". Variant {variant['name']}: {WHAT.get(variant['name'], variant['name'])}."),
        version=source["sha256"][:12], author=AUTHOR, license=config.license, labels=tuple(source["labels"]),
        channels=p.channels, mean=p.mean, std=p.std,
        input_description=f"{color} image, {size}, {values}" + (f"; the model {inside}." if inside else "."))


def read_summary(quantized: Path) -> dict:
    """quantize.json, with every listed .tflite checked against its recorded sha256."""
    path = Path(quantized) / SUMMARY
    if not path.is_file():
        raise ExportError(f"'{path}' does not exist: quantize first "
                          f"(python -m quantize --out {quantized}, or make export)")
    rebuild = f"run quantize again (python -m quantize --out {quantized}, or make export)"
    try:
        summary = publish.read_record(path, SUMMARY, rebuild)
    except publish.PublishError as e:
        raise ExportError(str(e)) from None
    if not isinstance(summary.get("variants"), list) or not all(
            isinstance(v, dict) and {"name", "file", "sha256"} <= v.keys() for v in summary["variants"]):
        raise ExportError(f"'{path}' has no list of variants with name, file and sha256: {rebuild}")
    for v in summary["variants"]:
        f = Path(quantized) / v["file"]
        if not f.is_file() or files.sha256(f) != v["sha256"]:
            raise ExportError(f"'{f}' is missing or differs from the one {path.name} describes "
                              f"(a later or interrupted quantize run?): run quantize again")
    return summary


def _checked_summary(quantized: Path) -> dict:
    """read_summary, and the labels an app will read (check_labels)."""
    summary = read_summary(quantized)
    source = summary.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("labels"), list):
        raise ExportError(f"'{Path(quantized) / SUMMARY}' has no source model labels: run quantize again "
                          f"(python -m quantize --out {quantized}, or make export)")
    check_labels(source["labels"])
    return summary


def metadata_record(summary: dict, variant: dict) -> dict:
    """The JSON each .tflite carries: enough to classify an image with nothing else."""
    source = summary["source"]
    config = source.get("config", {})
    model = {k: config.get(k) for k in MODEL_KEYS}
    if config.get("minimalistic"):   # MobileNet V3 without squeeze-and-excite and hard-swish
        model["minimalistic"] = True
    model.update({k: source.get("model", {}).get(k) for k in ("input_shape", "classes", "params", "macs")})
    form = input_form(source, variant)
    return {
        "format": FORMAT,
        "variant": variant["name"],
        "labels": source["labels"],
        "preprocessing": form["preprocessing"],   # what to do to a pixel for this file's input
        "input": form,
        "model": model,
        "train": {"config": config, "val_top1": source.get("val_top1"),
                  "test_top1": source.get("test_top1"), "data": source.get("data")},
        "quantization": variant["converter"],
        "provenance": {"source_model": {"file": Path(source["file"]).name, "sha256": source["sha256"]},
                       "quantized_sha256": variant["sha256"],
                       "converter": summary["converter"], "versions": summary["versions"],
                       "quantized": summary["created"],
                       "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }


def eval_subset(test: Split, size: int | None, seed: int) -> tuple[Split, str]:
    """The whole test split, or ``size`` images drawn with a fixed seed (folder splits are
    ordered by class, so the first ``size`` would miss classes)."""
    if size is None or size >= len(test):
        return test, "the whole test split"
    idx = np.sort(np.random.default_rng(seed).permutation(len(test))[:size])
    return Split(test.x[idx], test.y[idx]), f"{size} test images drawn with seed {seed}"


def write_eval_pack(path: Path, split: Split, labels: list, p: Preprocessing, info: dict) -> None:
    with files.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:   # a file object: np.savez would append .npz to a name
            np.savez_compressed(f, x=split.x, y=split.y.astype(np.int64), labels=np.array(labels),
                                preprocessing=np.array(json.dumps(p.to_dict())),
                                info=np.array(json.dumps(info)))


def _variant_entry(v: dict, path: Path, result, clf: Classifier, reference, summary: dict) -> dict:
    data = path.read_bytes()
    return {"name": v["name"], "file": path.name, "size_bytes": len(data), "sha256": files.sha256(data),
            "input": clf.input, "output": clf.output, "input_form": input_form(summary["source"], v),
            "top1": result.top1,
            "agreement": agreement(result.predictions, reference.predictions) if reference else None,
            "per_class_top1": result.per_class_top1,
            "quantization": v["converter"],
            # int8 under an accuracy budget (quantize --max-drop): the layers kept in float32.
            **({"float_layers": v["float_layers"]} if "float_layers" in v else {}),
            "converter": {"api": summary["converter"]["api"], "version": summary["converter"]["tensorflow"]},
            "tensorflow": summary["converter"]["tensorflow"],
            "eval_seconds": result.seconds}


def run(config: ExportConfig, quantized: Path, out: Path, dataset: Dataset | None = None,
        data: str | None = None, progress=None) -> dict:
    """Export every variant in ``quantized``/quantize.json to ``out``; returns the manifest.

    ``dataset`` skips loading the data (tests pass tiny ones); ``data`` loads
    another location than the one the model was trained on.
    """
    from pipeline import quiet

    out = Path(out)
    _checked_summary(quantized)   # a missing or stale quantize.json fails before OUT is touched
    with publish.lock(out):   # and is read again under the lock, which keeps quantize out of OUT
        return _run(config, quantized, out, dataset, data, progress or quiet.progress)


def _run(config: ExportConfig, quantized: Path, out: Path, dataset: Dataset | None, data: str | None,
         progress) -> dict:
    summary = _checked_summary(quantized)
    source = summary["source"]
    labels = list(source["labels"])
    p = Preprocessing.from_dict(source["preprocessing"])
    if dataset is None:
        dataset = load_data(source, data, progress)
    if list(dataset.labels) != labels:
        raise ExportError(f"the data has classes {dataset.labels}, the model {labels}: pass --data "
                          f"with the class folders the model was trained on")
    test = dataset.test
    if len(test) == 0:
        raise ExportError("the test split is empty: top-1 needs test images; use data with more images")
    p.check_images(test.x)

    with publish.staged(out, MANIFEST, point="export") as stage:
        manifest = _write_set(config, summary, quantized, dataset, stage, progress)
    return manifest


def _write_set(config: ExportConfig, summary: dict, quantized: Path, dataset: Dataset, out: Path,
               progress) -> dict:
    """The set (.tflite files, labels, eval pack, manifest last) into ``out``, a staging folder."""
    from train.fit import machine

    source = summary["source"]
    labels = list(source["labels"])
    p = Preprocessing.from_dict(source["preprocessing"])
    test = dataset.test
    written = []
    for v in summary["variants"]:
        raw = (Path(quantized) / v["file"]).read_bytes()
        path = out / f"{v['name']}.tflite"
        card = model_card(summary, v, raw, config)
        record = json.dumps(metadata_record(summary, v), sort_keys=True).encode("utf-8")
        tflite = pack(raw, {model_metadata.NAME: model_metadata.build(card), METADATA_NAME: record},
                      files={card.labels_file: model_metadata.labels_text(labels)}, batch=1)
        model_metadata.check(tflite, card)
        path.write_bytes(tflite)
        written.append((v, path))
    (out / LABELS).write_bytes(model_metadata.labels_text(labels))
    seed = int(source.get("config", {}).get("seed", 0))
    subset, how = eval_subset(test, config.eval_size, seed)
    pack_info = {"split": "test", "images": len(subset), "of": len(test), "selection": how,
                 "data": {k: v for k, v in dataset.describe().items() if k != "labels"}}
    write_eval_pack(out / EVAL_PACK, subset, labels, p, pack_info)

    entries, reference, runtime = [], None, None
    for v, path in written:
        # Preprocessing comes from the file's own metadata: what a device would do.
        clf = Classifier(str(path), batch_size=config.batch_size, num_threads=config.num_threads)
        result = evaluate(clf, test.x, test.y, labels, progress)
        if v["name"] == "float32":
            reference = result
        entries.append(_variant_entry(v, path, result, clf, reference, summary))
        runtime = clf.runtime
    float32 = next((e for e in entries if e["name"] == "float32"), None)
    for e in entries:
        e["size_vs_float32"] = e["size_bytes"] / float32["size_bytes"] if float32 else None
        e["top1_vs_float32"] = e["top1"] - float32["top1"] if float32 else None

    manifest = {
        "artifact": MANIFEST,
        "schema_version": SCHEMA_VERSION,
        "variants": entries,
        "labels": labels,
        "preprocessing": p.to_dict(),
        "model": {k: v for k, v in source.items()
                  if k not in ("artifact", "labels", "preprocessing", "timing", "machine")},
        "quantize": {"config": summary["config"], "calibration": summary["calibration"],
                     **({"accuracy_budget": summary["accuracy_budget"]}
                        if "accuracy_budget" in summary else {}),
                     "created": summary["created"]},
        "evaluation": {"split": "test", "images": len(test), "runtime": runtime,
                       "batch_size": config.batch_size, "num_threads": config.num_threads,
                       "machine": machine()},
        "eval_pack": {"file": EVAL_PACK, "size_bytes": (out / EVAL_PACK).stat().st_size,
                      "sha256": files.sha256(out / EVAL_PACK), **pack_info},
        "labels_file": LABELS,
        "config": config.to_dict(),
        "versions": {**summary["versions"], runtime["name"]: runtime["version"]},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _in_float32(entry: dict) -> str:
    """' (2 layers in float32)': int8 under an accuracy budget; ' (19 ops in float32)': int16x8's
    ops without a 16x8 kernel."""
    for n, what in ((len(entry.get("float_layers") or []), "layer"),
                    (len(entry.get("quantization", {}).get("float_ops") or []), "op")):
        if n:
            return f" ({n} {what}{'s' if n > 1 else ''} in float32)"
    return ""


def table(manifest: dict) -> str:
    """The README table: variant, size, top-1, change against float32, agreement."""
    rows = ["| variant | size | vs float32 | top-1 | change vs float32 | agreement |",
            "|---|---:|---:|---:|---:|---:|"]
    for e in manifest["variants"]:
        ratio = f"{e['size_vs_float32']:.2f}x" if e.get("size_vs_float32") is not None else "-"
        change = (f"{100 * e['top1_vs_float32']:+.2f} pt" if e.get("top1_vs_float32") is not None else "-")
        agree = f"{100 * e['agreement']:.2f}%" if e.get("agreement") is not None else "-"
        rows.append(f"| {e['name']}{_in_float32(e)} | {e['size_bytes'] / 1024:.1f} KiB | {ratio} | "
                    f"{100 * e['top1']:.2f}% | {change} | {agree} |")
    ev = manifest["evaluation"]
    rows.append(f"\nTop-1 on the {ev['images']} test images, {ev['runtime']['name']} "
                f"{ev['runtime']['version']} on {ev['machine'].get('cpu', '?')}.")
    return "\n".join(rows)
