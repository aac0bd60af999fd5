"""Write the metadata JSON into a .tflite's own flatbuffer (host side).

    tflite = embed(tflite, {"format": 1, "labels": [...], ...})

The JSON goes into a new entry of ``Model.buffers`` and a ``Model.metadata``
entry named ``METADATA_NAME`` points at it; an entry of that name already
present is replaced. Interpreters ignore metadata they do not know, so the
model runs unchanged. ``android_bench.device.tflite_metadata`` reads it back
with the standard library only.

The model is unpacked and repacked with the flatbuffer object API
(``flatbuffer_utils``). Its generated code writes buffer data with 1-byte
alignment, where the schema asks for 16 (``force_align``) and the converter
writes at least 4: weights read as float32/int32 straight from the file must be
aligned on CPUs without unaligned loads (32-bit ARM), so buffers are repacked
16-byte aligned here.
"""
from __future__ import annotations

import json

import numpy as np

from android_bench.device.tflite_metadata import FORMAT, METADATA_NAME

ALIGN = 16   # bytes, Buffer.data's force_align in schema.fbs


def _aligned_buffer_type():
    from tensorflow.lite.python import schema_py_generated as fb

    class AlignedBuffer(fb.BufferT):
        def Pack(self, builder):
            if self.data is None or len(self.data) == 0:
                return super().Pack(builder)
            payload = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), ALIGN)
            builder.head -= len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            data = builder.EndVector()
            fb.BufferStart(builder)
            fb.BufferAddData(builder, data)
            fb.BufferAddOffset(builder, self.offset)
            fb.BufferAddSize(builder, self.size)
            return fb.BufferEnd(builder)

    return AlignedBuffer


def embed(model: bytes, record: dict, name: str = METADATA_NAME) -> bytes:
    """``model`` with ``record`` (JSON-serializable) stored as metadata ``name``."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    if record.get("format") != FORMAT:
        raise ValueError(f"metadata record must carry format {FORMAT}, got {record.get('format')!r}")
    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    payload = np.frombuffer(json.dumps(record, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    obj.metadata = obj.metadata or []
    existing = [m for m in obj.metadata if (m.name.decode() if isinstance(m.name, bytes) else m.name) == name]
    if existing:
        obj.buffers[existing[0].buffer].data = payload
    else:
        buf = fb.BufferT()
        buf.data = payload
        obj.buffers.append(buf)
        entry = fb.MetadataT()
        entry.name, entry.buffer = name, len(obj.buffers) - 1
        obj.metadata.append(entry)
    aligned = _aligned_buffer_type()
    for buf in obj.buffers:
        buf.__class__ = aligned
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))
