"""The standard TFLite Model Metadata of an exported image classifier (host side).

    entry = model_metadata.build(card)              # ModelMetadata flatbuffer bytes, identifier M001
    tflite = metadata.pack(tflite, {model_metadata.NAME: entry}, files={card.labels_file: ...})
    model_metadata.check(tflite, card)              # refuses metadata that disagrees with the model

What MediaPipe Tasks, the TFLite Support Library and Android Studio's ML Model
Binding read: the model's name, description, version, author and license; the
input as an image (color space, ``NormalizationOptions``, the range of its
values as ``Stats``); the output's labels as an associated file of type
``TENSOR_AXIS_LABELS``, packed in the zip archive after the flatbuffer
(``export.metadata.pack``). ``min_parser_version`` is the newest schema
version whose additions the entry uses (``min_parser_version()``), as the
schema asks. The flatbuffer is built with the schema's generated Python
bindings that the maintained ``mediapipe`` package ships
(``mediapipe/tasks/metadata/metadata_schema_py_generated.py``), loaded from
their file: they import only ``flatbuffers``, while importing mediapipe's
package imports TensorFlow, OpenCV and matplotlib (5 s here).
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from android_bench.device import tflite_metadata

NAME = tflite_metadata.STANDARD_NAME
IDENTIFIER = tflite_metadata.STANDARD_IDENTIFIER
SCHEMA_FILE = ("tasks", "metadata", "metadata_schema_py_generated.py")   # inside the mediapipe package


class MetadataMismatch(ValueError):
    """The metadata would tell a consumer something the model does not do."""


@functools.lru_cache(maxsize=1)
def schema():
    """The generated bindings of metadata_schema.fbs (tflite namespace), from the mediapipe package."""
    spec = importlib.util.find_spec("mediapipe")
    path = Path(next(iter(spec.submodule_search_locations)), *SCHEMA_FILE) if spec else None
    if path is None or not path.is_file():
        raise MetadataMismatch(f"the TFLite metadata schema bindings are missing ({path or 'no mediapipe package'}): "
                               f"pip install mediapipe==1.2.3 (make venv installs it)")
    module_spec = importlib.util.spec_from_file_location("tflite_metadata_schema", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Card:
    """What the standard entry says about one exported .tflite."""
    name: str
    description: str
    version: str
    author: str
    license: str
    labels: tuple
    channels: int                 # of the input tensor: 3 (RGB) or 1 (GRAYSCALE)
    mean: float                   # NormalizationOptions: float value = (pixel - mean) / std
    std: float
    input_description: str
    labels_file: str = "labels.txt"

    @property
    def color_space(self) -> str:
        return "RGB" if self.channels == 3 else "GRAYSCALE"

    @property
    def value_range(self) -> tuple[float, float]:
        """Stats of the input tensor: what pixels 0 and 255 become after normalization."""
        return (0 - self.mean) / self.std, (255 - self.mean) / self.std


def labels_text(labels) -> bytes:
    return ("\n".join(labels) + "\n").encode("utf-8")


def _version(text: str) -> tuple:
    return tuple(int(v) for v in text.split("."))


def min_parser_version(meta) -> str:
    """The newest schema version whose additions ``meta`` (a ModelMetadataT) uses; "1.0.0" for
    none. From the history in metadata_schema.fbs (schema 1.5.0)."""
    md = schema()
    need = ["1.0.0"]
    tokenizers = {md.ProcessUnitOptions.BertTokenizerOptions: "1.1.0",
                  md.ProcessUnitOptions.SentencePieceTokenizerOptions: "1.1.0",
                  md.ProcessUnitOptions.RegexTokenizerOptions: "1.2.1"}
    file_types = {md.AssociatedFileType.VOCABULARY: "1.0.1", md.AssociatedFileType.SCANN_INDEX_FILE: "1.4.0"}
    files, units, tensors = list(meta.associatedFiles or []), [], []
    for sg in meta.subgraphMetadata or []:
        if sg.inputProcessUnits or sg.outputProcessUnits:
            need.append("1.1.0")
        if sg.inputTensorGroups or sg.outputTensorGroups:
            need.append("1.2.0")
        if sg.customMetadata:
            need.append("1.5.0")
        files += sg.associatedFiles or []
        units += list(sg.inputProcessUnits or []) + list(sg.outputProcessUnits or [])
        tensors += list(sg.inputTensorMetadata or []) + list(sg.outputTensorMetadata or [])
    for t in tensors:
        files += t.associatedFiles or []
        units += t.processUnits or []
        if t.content is not None and t.content.contentPropertiesType == md.ContentProperties.AudioProperties:
            need.append("1.3.0")
    for u in units:
        if u.optionsType in tokenizers:
            need.append(tokenizers[u.optionsType])
            options = u.options
            files += [f for key in ("vocabFile", "sentencePieceModel") for f in getattr(options, key, None) or []]
    for f in files:
        need += [file_types[f.type]] if f.type in file_types else []
        need += ["1.4.1"] if f.version is not None else []
    return max(need, key=_version)


def _tensor(md, name: str, description: str, stats: tuple[float, float]):
    t = md.TensorMetadataT()
    t.name, t.description = name, description
    t.stats = md.StatsT()
    t.stats.min, t.stats.max = [float(stats[0])], [float(stats[1])]
    t.content = md.ContentT()
    return t


def build(card: Card) -> bytes:
    """The ModelMetadata flatbuffer (file identifier M001) for ``card``."""
    import flatbuffers
    md = schema()
    image = _tensor(md, "image", card.input_description, card.value_range)
    image.content.contentPropertiesType = md.ContentProperties.ImageProperties
    image.content.contentProperties = md.ImagePropertiesT()
    image.content.contentProperties.colorSpace = getattr(md.ColorSpaceType, card.color_space)
    unit = md.ProcessUnitT()
    unit.optionsType = md.ProcessUnitOptions.NormalizationOptions
    unit.options = md.NormalizationOptionsT()
    unit.options.mean, unit.options.std = [float(card.mean)] * card.channels, [float(card.std)] * card.channels
    image.processUnits = [unit]

    scores = _tensor(md, "probability", f"Probabilities of the {len(card.labels)} labels respectively.", (0.0, 1.0))
    scores.content.contentPropertiesType = md.ContentProperties.FeatureProperties
    scores.content.contentProperties = md.FeaturePropertiesT()
    labels = md.AssociatedFileT()
    labels.name, labels.type = card.labels_file, md.AssociatedFileType.TENSOR_AXIS_LABELS
    labels.description = "Labels for categories that the model can recognize."
    scores.associatedFiles = [labels]

    graph = md.SubGraphMetadataT()
    graph.inputTensorMetadata, graph.outputTensorMetadata = [image], [scores]
    meta = md.ModelMetadataT()
    meta.name, meta.description, meta.version = card.name, card.description, card.version
    meta.author, meta.license = card.author, card.license
    meta.subgraphMetadata = [graph]
    meta.minParserVersion = min_parser_version(meta)
    builder = flatbuffers.Builder(1024)
    builder.Finish(meta.Pack(builder), file_identifier=IDENTIFIER)
    return bytes(builder.Output())


def io_tensors(model: bytes) -> tuple[dict, dict]:
    """(input, output) of the main subgraph: dtype name, shape, scale, zero point."""
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    g = obj.subgraphs[0]

    def info(index):
        t = g.tensors[index]
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
        zero = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
        return {"dtype": flatbuffer_utils.type_to_name(t.type).lower(), "shape": [int(d) for d in t.shape],
                "scale": scale, "zero_point": zero}
    return info(g.inputs[0]), info(g.outputs[0])


def check(model: bytes, card: Card) -> None:
    """Raise MetadataMismatch, listing every difference, unless the metadata ``model`` carries, read
    back, says what ``card`` says and what the model's tensors do: color space against channels,
    normalization, a uint8 input against raw pixels (what MediaPipe feeds), labels against the
    output's size."""
    found = tflite_metadata.inspect(model)
    inp, out = io_tensors(model)
    problems = list(found["problems"]) + [m for m in found["missing"] if tflite_metadata.METADATA_NAME not in m]
    channels = inp["shape"][-1] if len(inp["shape"]) == 4 else None
    color = found["color_space"]
    if channels != card.channels:
        problems.append(f"the input has shape {inp['shape']}, the metadata describes {card.channels}-channel images")
    if (color, channels) not in (("RGB", 3), ("GRAYSCALE", 1)):
        problems.append(f"the metadata's color space is {color} but the input has {channels} channel(s)")
    norm = found["normalization"] or {}
    for key, want in (("mean", card.mean), ("std", card.std)):
        got = norm.get(key) or []
        if len(got) not in (1, channels) or not np.allclose(got, want, rtol=1e-6, atol=0):
            problems.append(f"NormalizationOptions {key} is {got}; the model takes (pixel - {card.mean:g}) / "
                            f"{card.std:g} in each of its {channels} channel(s)")
    if inp["dtype"] == "uint8":
        # MediaPipe feeds raw pixels p and ignores the quantization: the model reads (p - zp) * scale.
        if not (np.isclose(inp["scale"], 1 / card.std, rtol=1e-6) and np.isclose(inp["zero_point"], card.mean)):
            problems.append(f"the uint8 input has scale {inp['scale']:g} and zero point {inp['zero_point']}: "
                            f"MediaPipe feeds raw pixels p, which the model would read as (p - "
                            f"{inp['zero_point']}) * {inp['scale']:g}, not (p - {card.mean:g}) / {card.std:g}")
    classes = out["shape"][-1] if out["shape"] else None
    labels = found["labels"]
    if labels is None or len(labels) != classes:
        problems.append(f"{'no' if labels is None else len(labels)} labels for an output of {classes} scores")
    elif list(labels) != list(card.labels):
        problems.append(f"the packed labels read back as {labels}, not {list(card.labels)}")
    if problems:
        raise MetadataMismatch("the metadata disagrees with the model, refused: " + "; ".join(problems))
