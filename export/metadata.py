"""Write metadata entries, packed files and a fixed batch into a .tflite (host side).

    tflite = pack(tflite, {"TFLITE_METADATA": model_metadata_bytes, "mobilenet_deploy": json_bytes},
                  files={"labels.txt": b"..."}, batch=1)
    tflite = embed(tflite, {"format": 1, "labels": [...], ...})    # just this project's JSON

Each entry goes into a new entry of ``Model.buffers`` and a ``Model.metadata``
entry of its name points at it; an entry of that name already present is
replaced. Interpreters ignore metadata they do not know, so the model runs
unchanged. ``android_bench.device.tflite_metadata`` reads it all back with the
standard library only.

``files`` are zipped (stored, not compressed) and the archive appended to the
flatbuffer, the way TFLite's metadata populator packs associated files (the
labels): ``zipfile`` in append mode, so the archive's offsets count from the
start of the file. A zip reader finds it from the end, an interpreter never
reads past the flatbuffer. Without ``files``, the files already packed are kept.

``batch`` declares that batch size in every tensor's ``shape_signature`` whose
batch dimension is dynamic (-1, what the converter writes for a Keras model):
GPU and NPU delegates want static shapes. The graph itself still takes any
batch (its ops were converted for a dynamic one), so a runner that resizes the
input evaluates in batches all the same.

The model is unpacked and repacked with the flatbuffer object API
(``flatbuffer_utils``). Its generated code writes buffer data with 1-byte
alignment, where the schema asks for 16 (``force_align``) and the converter
writes at least 4: weights read as float32/int32 straight from the file must be
aligned on CPUs without unaligned loads (32-bit ARM), so buffers are repacked
16-byte aligned here.
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from android_bench.device import tflite_metadata
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


def _name(entry) -> str:
    return entry.name.decode() if isinstance(entry.name, bytes) else entry.name


def zip_files(model: bytes, files: dict[str, bytes]) -> bytes:
    """``model`` with ``files`` in a zip archive appended to it (uncompressed)."""
    buf = io.BytesIO(model)
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)   # reproducible bytes
    return buf.getvalue()


def pack(model: bytes, entries: dict[str, bytes], files: dict[str, bytes] | None = None,
         batch: int | None = None) -> bytes:
    """``model`` with each ``entries[name]`` stored as metadata ``name``, ``files`` packed after
    it (None: keep those already packed) and dynamic batch dimensions declared as ``batch``."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    if files is None:
        files = tflite_metadata.associated_files(model)
    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    obj.metadata = obj.metadata or []
    for name, data in entries.items():
        payload = np.frombuffer(bytes(data), dtype=np.uint8)
        existing = [m for m in obj.metadata if _name(m) == name]
        if existing:
            obj.buffers[existing[0].buffer].data = payload
            continue
        buf = fb.BufferT()
        buf.data = payload
        obj.buffers.append(buf)
        entry = fb.MetadataT()
        entry.name, entry.buffer = name, len(obj.buffers) - 1
        obj.metadata.append(entry)
    if batch is not None:
        for graph in obj.subgraphs:
            for t in graph.tensors:
                if t.shapeSignature is not None and len(t.shapeSignature) and t.shapeSignature[0] == -1:
                    t.shapeSignature[0] = batch
                    if t.shape is not None and len(t.shape):
                        t.shape[0] = batch
    aligned = _aligned_buffer_type()
    for buf in obj.buffers:
        buf.__class__ = aligned
    out = bytes(flatbuffer_utils.convert_object_to_bytearray(obj))
    return zip_files(out, files) if files else out


def embed(model: bytes, record: dict, name: str = METADATA_NAME) -> bytes:
    """``model`` with ``record`` (JSON-serializable) stored as metadata ``name``."""
    if record.get("format") != FORMAT:
        raise ValueError(f"metadata record must carry format {FORMAT}, got {record.get('format')!r}")
    return pack(model, {name: json.dumps(record, sort_keys=True).encode("utf-8")})
