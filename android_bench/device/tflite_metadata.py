"""Read the metadata a .tflite carries, with nothing but the standard library.

    python3 -m android_bench.device.tflite_metadata build/int8.tflite   # prints it as JSON

``python -m export`` writes two ``Model.metadata`` entries in each .tflite:

* ``TFLITE_METADATA``, the standard TFLite Model Metadata that MediaPipe Tasks,
  the TFLite Support Library and Android Studio read: a ``ModelMetadata``
  flatbuffer (file identifier ``M001``, tensorflow/lite/schema/metadata_schema.fbs)
  with the input's color space and ``NormalizationOptions``, and the labels as
  an associated file (``TENSOR_AXIS_LABELS``) packed, as TFLite packs them, in
  a zip archive appended to the model. ``standard()`` and ``labels()`` read it;
  it is where a device takes the labels and the normalization from;
* ``METADATA_NAME``, this project's JSON document (preprocessing, model
  configuration, provenance: what made the file), read by ``load()``.

``inspect()`` says what a file has of both and what is missing or corrupt, so
that a .tflite from elsewhere still benchmarks. Each entry's ``buffer`` index
points at its bytes in ``Model.buffers``. This module finds them by walking the
flatbuffers by hand, so a device needs neither TensorFlow nor the
``flatbuffers`` package:

    Model (root table)
      field 2 subgraphs: [SubGraph] SubGraph field 0 tensors: [Tensor] (0 shape: [int]),
                                    field 1 inputs: [int]
      field 4 buffers:  [Buffer]    Buffer field 0 data: [ubyte]
                                    (or fields 1 offset / 2 size: bytes outside
                                    the flatbuffer, for models over 2 GB)
      field 6 metadata: [Metadata]  Metadata field 0 name: string, 1 buffer: uint

    ModelMetadata (root of TFLITE_METADATA's buffer)
      0 name, 1 description, 2 version, 3 subgraph_metadata: [SubGraphMetadata],
      4 author, 5 license, 7 min_parser_version
    SubGraphMetadata: 2 input_tensor_metadata, 3 output_tensor_metadata: [TensorMetadata]
    TensorMetadata: 0 name, 1 description, 3 content: Content, 4 process_units: [ProcessUnit],
                    5 stats: Stats, 6 associated_files: [AssociatedFile]
    Content: 0/1 content_properties (union: type 2 = ImageProperties, 0 color_space: byte)
    ProcessUnit: 0/1 options (union: type 1 = NormalizationOptions, 0 mean, 1 std: [float])
    Stats: 0 max, 1 min: [float]      AssociatedFile: 0 name, 1 description, 2 type: byte

Field numbers are those of tensorflow/lite/schema/schema.fbs and
metadata_schema.fbs (a union field takes two numbers: its type, then its
value). Flatbuffer layout: a table starts with an int32 back-offset to its
vtable; the vtable holds uint16 (vtable size, table size, field offsets...);
an offset field holds a uint32 forward offset from its own position; a vector
or string is a uint32 length followed by its elements. Everything is
little-endian.

Python 3.9 compatible: this file ships to Pis and phones.
"""
from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
from typing import Any, Dict, List, Optional, Tuple, Union

METADATA_NAME = "mobilenet_deploy"   # the Model.metadata entry export writes
FORMAT = 1                           # bump when the JSON's meaning changes
FILE_IDENTIFIER = b"TFL3"
STANDARD_NAME = "TFLITE_METADATA"    # the standard entry (TFLite Model Metadata)
STANDARD_IDENTIFIER = b"M001"

_MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA = 2, 4, 6
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _TENSOR_SHAPE = 0, 1, 0
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
# metadata_schema.fbs
_MM_FIELDS = {"name": 0, "description": 1, "version": 2, "author": 4, "license": 5, "min_parser_version": 7}
_MM_SUBGRAPHS, _SG_INPUTS, _SG_OUTPUTS = 3, 2, 3
_TM_NAME, _TM_DESCRIPTION, _TM_CONTENT, _TM_PROCESS_UNITS, _TM_STATS, _TM_FILES = 0, 1, 3, 4, 5, 6
_UNION_TYPE, _UNION_VALUE = 0, 1      # Content.content_properties, ProcessUnit.options
_IMAGE_PROPERTIES, _NORMALIZATION_OPTIONS = 2, 1
_FILE_NAME, _FILE_DESCRIPTION, _FILE_TYPE = 0, 1, 2
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}
FILE_TYPES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS", 3: "TENSOR_VALUE_LABELS",
              4: "TENSOR_AXIS_SCORE_CALIBRATION", 5: "VOCABULARY", 6: "SCANN_INDEX_FILE"}


class MetadataError(ValueError):
    pass


class _Flatbuffer:
    """Bounds-checked reads of the few flatbuffer constructs the walk needs."""

    def __init__(self, data: bytes):
        self.data = data

    def _unpack(self, fmt: str, pos: int):
        try:
            return struct.unpack_from(fmt, self.data, pos)[0]
        except struct.error:
            raise MetadataError(f"truncated or corrupt flatbuffer: read past the end at byte {pos} "
                                f"of {len(self.data)}") from None

    def u16(self, pos: int) -> int:
        return self._unpack("<H", pos)

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def i32(self, pos: int) -> int:
        return self._unpack("<i", pos)

    def u64(self, pos: int) -> int:
        return self._unpack("<Q", pos)

    def u8(self, pos: int) -> int:
        return self._unpack("<B", pos)

    def field(self, table: int, index: int) -> Optional[int]:
        """Absolute position of field ``index`` of the table at ``table``; None if absent."""
        vtable = table - self.i32(table)
        vtable_size = self.u16(vtable)
        slot = 4 + 2 * index
        if slot + 2 > vtable_size:
            return None
        offset = self.u16(vtable + slot)
        return table + offset if offset else None

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def vector(self, pos: int, size: int = 1) -> Tuple[int, int]:
        """(start of the elements, count) of the vector of ``size``-byte elements referenced at ``pos``."""
        start = self.deref(pos)
        n = self.u32(start)
        if start + 4 + n * size > len(self.data):
            raise MetadataError(f"corrupt flatbuffer: vector of {n} at byte {start} runs past the end")
        return start + 4, n

    def tables(self, pos: Optional[int]) -> List[int]:
        if pos is None:
            return []
        start, n = self.vector(pos)
        return [self.deref(start + 4 * i) for i in range(n)]

    def bytes_at(self, pos: int) -> bytes:
        start, n = self.vector(pos)
        return bytes(self.data[start:start + n])

    def string(self, table: int, index: int) -> Optional[str]:
        pos = self.field(table, index)
        return None if pos is None else self.bytes_at(pos).decode("utf-8", "replace")

    def numbers(self, table: int, index: int, kind: str) -> Optional[List[Any]]:
        """The vector of 4-byte numbers at field ``index``: kind "f" float32, "i" int32; None if absent."""
        pos = self.field(table, index)
        if pos is None:
            return None
        start, n = self.vector(pos, 4)
        return list(struct.unpack_from(f"<{n}{kind}", self.data, start))

    def table(self, table: int, index: int) -> Optional[int]:
        pos = self.field(table, index)
        return None if pos is None else self.deref(pos)

    def byte(self, table: int, index: int, default: int = 0) -> int:
        pos = self.field(table, index)
        return default if pos is None else self.u8(pos)


def _model_root(fb: _Flatbuffer) -> int:
    if len(fb.data) < 8 or fb.data[4:8] != FILE_IDENTIFIER:
        got = bytes(fb.data[4:8])
        raise MetadataError(f"not a TFLite model: file identifier {got!r} at bytes 4-8, expected "
                            f"{FILE_IDENTIFIER!r} (is this the .tflite written by `python -m export`?)")
    return fb.u32(0)


def buffer_spans(model: bytes) -> List[Tuple[int, int]]:
    """(byte offset in the file, length) of every entry of Model.buffers; (0, 0) when empty."""
    fb = _Flatbuffer(model)
    root = _model_root(fb)
    spans = []
    for buf in fb.tables(fb.field(root, _MODEL_BUFFERS)):
        data = fb.field(buf, _BUFFER_DATA)
        if data is not None:
            spans.append(fb.vector(data))
            continue
        off, size = fb.field(buf, _BUFFER_OFFSET), fb.field(buf, _BUFFER_SIZE)
        offset = fb.u64(off) if off is not None else 0
        # offset 0 and 1 both mean "no data" in the schema (1 is a placeholder).
        spans.append((offset, fb.u64(size)) if offset > 1 and size is not None else (0, 0))
    return spans


def input_shape(model: bytes) -> List[int]:
    """The shape of the first subgraph's first input tensor, e.g. [1, 32, 32, 3]."""
    fb = _Flatbuffer(model)
    graph = fb.tables(fb.field(_model_root(fb), _MODEL_SUBGRAPHS))[0]
    index = fb.numbers(graph, _SUBGRAPH_INPUTS, "i")[0]
    return fb.numbers(fb.tables(fb.field(graph, _SUBGRAPH_TENSORS))[index], _TENSOR_SHAPE, "i") or []


def read_metadata(model: bytes) -> Dict[str, bytes]:
    """Every Model.metadata entry of a .tflite's bytes: {name: buffer bytes}."""
    fb = _Flatbuffer(model)
    root = _model_root(fb)
    spans = buffer_spans(model)
    out = {}
    for entry in fb.tables(fb.field(root, _MODEL_METADATA)):
        name_pos, index_pos = fb.field(entry, _METADATA_NAME), fb.field(entry, _METADATA_BUFFER)
        if name_pos is None:
            continue
        name = fb.bytes_at(name_pos).decode("utf-8", "replace")
        index = fb.u32(index_pos) if index_pos is not None else 0
        if index >= len(spans):
            raise MetadataError(f"metadata '{name}' points at buffer {index}, "
                                f"but the model has {len(spans)} buffers")
        start, length = spans[index]
        if start + length > len(model):
            raise MetadataError(f"metadata '{name}' runs past the end of the file ({start}+{length} "
                                f"> {len(model)} bytes): the .tflite is truncated")
        out[name] = bytes(model[start:start + length])
    return out


def _read(model: Union[str, bytes, bytearray, memoryview, Any]) -> Tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "the model bytes"
    with open(model, "rb") as f:
        return f.read(), f"'{model}'"


def _tensor(fb: _Flatbuffer, t: int) -> Dict[str, Any]:
    content = fb.table(t, _TM_CONTENT)
    color = None
    if content is not None and fb.byte(content, _UNION_TYPE) == _IMAGE_PROPERTIES:
        image = fb.table(content, _UNION_VALUE)
        color = COLOR_SPACES.get(fb.byte(image, 0), "UNKNOWN") if image is not None else "UNKNOWN"
    normalization = None
    for unit in fb.tables(fb.field(t, _TM_PROCESS_UNITS)):
        if fb.byte(unit, _UNION_TYPE) == _NORMALIZATION_OPTIONS:
            options = fb.table(unit, _UNION_VALUE)
            if options is not None:
                normalization = {"mean": fb.numbers(options, 0, "f"), "std": fb.numbers(options, 1, "f")}
    stats = fb.table(t, _TM_STATS)
    files = [{"name": fb.string(f, _FILE_NAME), "description": fb.string(f, _FILE_DESCRIPTION),
              "type": FILE_TYPES.get(fb.byte(f, _FILE_TYPE), "UNKNOWN")}
             for f in fb.tables(fb.field(t, _TM_FILES))]
    return {"name": fb.string(t, _TM_NAME), "description": fb.string(t, _TM_DESCRIPTION),
            "color_space": color, "normalization": normalization,
            "stats": None if stats is None else {"min": fb.numbers(stats, 1, "f"), "max": fb.numbers(stats, 0, "f")},
            "associated_files": files}


def standard(model: Union[str, bytes, bytearray, memoryview, Any]) -> Optional[Dict[str, Any]]:
    """The standard TFLite Model Metadata of a .tflite as a dict, None if it has none.

    {"name", "description", "version", "author", "license", "min_parser_version",
    "inputs": [tensor], "outputs": [tensor]} of the first subgraph, each tensor
    {"name", "description", "color_space" ("RGB", "GRAYSCALE", "UNKNOWN"; None if
    not an image), "normalization" ({"mean": [...], "std": [...]} or None), "stats",
    "associated_files": [{"name", "description", "type"}]}.
    """
    data, where = _read(model)
    raw = read_metadata(data).get(STANDARD_NAME)
    if raw is None:
        return None
    if len(raw) < 8 or raw[4:8] != STANDARD_IDENTIFIER:
        raise MetadataError(f"the {STANDARD_NAME} entry of {where} is not a ModelMetadata flatbuffer "
                            f"(file identifier {bytes(raw[4:8])!r}, expected {STANDARD_IDENTIFIER!r})")
    fb = _Flatbuffer(raw)
    root = fb.u32(0)
    out: Dict[str, Any] = {key: fb.string(root, index) for key, index in _MM_FIELDS.items()}
    subgraphs = fb.tables(fb.field(root, _MM_SUBGRAPHS))
    out["inputs"] = [_tensor(fb, t) for t in fb.tables(fb.field(subgraphs[0], _SG_INPUTS))] if subgraphs else []
    out["outputs"] = [_tensor(fb, t) for t in fb.tables(fb.field(subgraphs[0], _SG_OUTPUTS))] if subgraphs else []
    return out


def associated_files(model: Union[str, bytes, bytearray, memoryview, Any]) -> Dict[str, bytes]:
    """{name: content} of the files packed in the zip archive after the flatbuffer; {} if none."""
    data, where = _read(model)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {name: z.read(name) for name in z.namelist()}
    except zipfile.BadZipFile:
        return {}
    except (zipfile.LargeZipFile, OSError, EOFError, KeyError, ValueError) as e:
        raise MetadataError(f"the files packed in {where} cannot be read ({type(e).__name__}: {e})") from None


def parse_labels(text: bytes, name: str = "labels") -> List[str]:
    """One label per line, UTF-8; a final newline ends the last line."""
    try:
        lines = text.decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise MetadataError(f"the label file {name} is not UTF-8 ({e})") from None
    return lines[:-1] if lines and lines[-1] == "" else lines


def labels(model: Union[str, bytes, bytearray, memoryview, Any]) -> Optional[List[str]]:
    """The labels of the first output, from its TENSOR_AXIS_LABELS file; None if it has none."""
    data, where = _read(model)
    meta = standard(data)
    found = [f for t in (meta or {}).get("outputs", [])[:1] for f in t["associated_files"]
             if f["type"] == "TENSOR_AXIS_LABELS"]
    if not found:
        return None
    packed = associated_files(data)
    if found[0]["name"] not in packed:
        raise MetadataError(f"{where} names the label file '{found[0]['name']}' but does not pack it "
                            f"(packed: {sorted(packed) or 'nothing'})")
    return parse_labels(packed[found[0]["name"]], found[0]["name"])


def inspect(model: Union[str, bytes, bytearray, memoryview, Any]) -> Dict[str, Any]:
    """Everything a runner takes from a file's metadata, and what is missing or corrupt.

    {"labels" (None if absent), "normalization" ({"mean", "std"} of the input, None if absent),
    "color_space", "standard" (as standard() gives it), "record" (as load() gives it),
    "missing": [what is absent, and what that costs], "problems": [what is corrupt]}.
    Labels and normalization come from the standard entry; a file without one (written
    before it existed) falls back on this project's record. Raises MetadataError only
    for a file that is not a TFLite model at all.
    """
    data, where = _read(model)
    _model_root(_Flatbuffer(data))
    out: Dict[str, Any] = {"labels": None, "normalization": None, "color_space": None, "standard": None,
                           "record": None, "missing": [], "problems": []}
    try:
        names = set(read_metadata(data))
    except MetadataError as e:
        out["problems"].append(f"the metadata of {where} cannot be read: {e}")
        return out
    if STANDARD_NAME not in names:
        out["missing"].append(f"{STANDARD_NAME} (the standard TFLite Model Metadata: MediaPipe Tasks and "
                              f"the TFLite Support Library cannot use the file)")
    else:
        try:
            meta = out["standard"] = standard(data)
            first = (meta["inputs"] or [{}])[0]
            out["normalization"], out["color_space"] = first.get("normalization"), first.get("color_space")
            if out["normalization"] is None:
                out["missing"].append("NormalizationOptions of the input (how to scale the pixels)")
            out["labels"] = labels(data)
            if out["labels"] is None:
                out["missing"].append("labels (no TENSOR_AXIS_LABELS file on the output)")
        except MetadataError as e:
            out["problems"].append(str(e))
    if METADATA_NAME not in names:
        out["missing"].append(f"{METADATA_NAME} (this project's provenance record)")
    else:
        try:
            record = out["record"] = load(data)
        except MetadataError as e:
            out["problems"].append(str(e))
        else:
            p = record.get("preprocessing") or {}
            if out["labels"] is None and record.get("labels"):
                out["labels"] = list(record["labels"])
            if out["normalization"] is None and "mean" in p and "std" in p:
                out["normalization"] = {"mean": [p["mean"]], "std": [p["std"]]}
    return out


def load(model: Union[str, bytes, bytearray, memoryview, Any]) -> Dict[str, Any]:
    """The JSON ``python -m export`` stored in a .tflite (a path or the file's bytes).

    Raises MetadataError, saying what to do, when the file is not a .tflite or
    carries no such entry (a .tflite from elsewhere: re-export it).
    """
    data, where = _read(model)
    entries = read_metadata(data)
    if METADATA_NAME not in entries:
        raise MetadataError(f"{where} has no '{METADATA_NAME}' metadata (entries: {sorted(entries)}); "
                            f"it was not written by `python -m export`: export it again")
    try:
        record = json.loads(entries[METADATA_NAME].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise MetadataError(f"the '{METADATA_NAME}' metadata in {where} is not valid JSON ({e}); "
                            f"export the model again") from None
    if record.get("format") != FORMAT:
        raise MetadataError(f"the '{METADATA_NAME}' metadata in {where} has format "
                            f"{record.get('format')!r}; this reader understands format {FORMAT}")
    return record


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m android_bench.device.tflite_metadata MODEL.tflite")
    try:
        found = inspect(sys.argv[1])
    except (MetadataError, OSError) as e:
        sys.exit(f"error: {e}")
    print(json.dumps({STANDARD_NAME: found["standard"], "labels": found["labels"], METADATA_NAME: found["record"],
                      "missing": found["missing"], "problems": found["problems"]}, indent=2))
