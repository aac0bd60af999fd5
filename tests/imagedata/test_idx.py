import gzip
import struct

import numpy as np
import pytest

from imagedata.idx import IdxError, read_idx


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def test_reads_gzip_and_plain(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx(a)))
    (tmp_path / "a").write_bytes(_idx(a))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), a)


def test_truncated_file_is_named(tmp_path):
    a = np.zeros((10, 28, 28), np.uint8)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(_idx(a)[:-100]))
    with pytest.raises(IdxError, match=r"train-images-idx3-ubyte.gz has 7740 data bytes.*truncated"):
        read_idx(p)


def test_bad_magic(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\0" * 8))
    with pytest.raises(IdxError, match="bad magic number 12340801"):
        read_idx(p)


def test_corrupt_gzip(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(_idx(np.zeros(50, np.uint8)))[:20])
    with pytest.raises(IdxError, match="is corrupt"):
        read_idx(p)


def test_missing_file(tmp_path):
    with pytest.raises(IdxError, match="not found"):
        read_idx(tmp_path / "nope.gz")
