"""Reader for the IDX format of MNIST and Fashion-MNIST, gzip or plain.

    images = read_idx("train-images-idx3-ubyte.gz")   # (60000, 28, 28) uint8

Header: two zero bytes, a type code (0x08 = uint8), the number of dimensions,
then one big-endian uint32 per dimension. The payload must be exactly the
product of the dimensions: a short or long file is corrupt, not "mostly fine".
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np


class IdxError(ValueError):
    pass


_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    path = Path(path)
    hint = "delete it and run again to fetch a fresh copy"
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise IdxError(f"IDX file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as e:
        raise IdxError(f"IDX file {path} is corrupt ({e}); {hint}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise IdxError(f"{path} is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'} "
                       f"(expected 0000 then a type code such as 08 and the rank); {hint}")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"IDX file {path} is truncated inside its header; {hint}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IdxError(f"IDX file {path} has {len(raw) - header} data bytes, its header {dims} "
                       f"promises {expected}: the file is truncated or corrupt; {hint}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))
