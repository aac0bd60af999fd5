"""Read the metadata a .tflite carries, with nothing but the standard library.

    python3 -m android_bench.device.tflite_metadata build/int8.tflite   # prints the JSON

``python -m export`` stores one JSON document (labels, preprocessing, model
configuration, provenance) in each .tflite it writes, as a ``Model.metadata``
entry named ``METADATA_NAME`` whose ``buffer`` index points at the UTF-8 bytes
in ``Model.buffers``. This module finds it by walking the flatbuffer by hand,
so a device needs neither TensorFlow nor the ``flatbuffers`` package:

    Model (root table)
      field 4 buffers:  [Buffer]    Buffer field 0 data: [ubyte]
                                    (or fields 1 offset / 2 size: bytes outside
                                    the flatbuffer, for models over 2 GB)
      field 6 metadata: [Metadata]  Metadata field 0 name: string, 1 buffer: uint

Field numbers are those of tensorflow/lite/schema/schema.fbs. Flatbuffer
layout: a table starts with an int32 back-offset to its vtable; the vtable
holds uint16 (vtable size, table size, field offsets...); an offset field holds
a uint32 forward offset from its own position; a vector or string is a uint32
length followed by its elements. Everything is little-endian.

Python 3.9 compatible: this file ships to Pis and phones.
"""
from __future__ import annotations

import json
import struct
import sys
from typing import Any, Dict, List, Optional, Tuple, Union

METADATA_NAME = "mobilenet_deploy"   # the Model.metadata entry export writes
FORMAT = 1                           # bump when the JSON's meaning changes
FILE_IDENTIFIER = b"TFL3"

_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


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

    def vector(self, pos: int) -> Tuple[int, int]:
        """(start of the elements, count) of the vector referenced at ``pos``."""
        start = self.deref(pos)
        n = self.u32(start)
        if start + 4 + n > len(self.data):
            # Elements are at least one byte each: a count that runs past the end is corruption.
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


def load(model: Union[str, bytes, bytearray, memoryview, Any]) -> Dict[str, Any]:
    """The JSON ``python -m export`` stored in a .tflite (a path or the file's bytes).

    Raises MetadataError, saying what to do, when the file is not a .tflite or
    carries no such entry (a .tflite from elsewhere: re-export it).
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, where = bytes(model), "the model bytes"
    else:
        with open(model, "rb") as f:
            data, where = f.read(), f"'{model}'"
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
        print(json.dumps(load(sys.argv[1]), indent=2))
    except (MetadataError, OSError) as e:
        sys.exit(f"error: {e}")
