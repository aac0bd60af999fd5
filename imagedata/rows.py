"""Rows of a (rows, H, W, C) uint8 array in a file, read with pread and written with pwrite.

    rows = Rows(RowFile(Path("images.npy")), offset=128)
    batch = rows.read(np.array([7, 3, 9]), (96, 96, 3))   # (3, 96, 96, 3) uint8, a copy

Why not the memory map: every page touched through a map stays mapped and counts in
the process's RSS until the whole array is resident, so an epoch of shuffled batches
ends with the whole split in RSS. pread copies the rows into a fresh buffer; the
pages stay in the kernel's page cache, which is not the process's memory and which
memory pressure reclaims. Rows read before come from that page cache at memory speed.
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagedata.folder import ImageFolderError


class CacheError(ImageFolderError):
    """The decoded-image cache cannot be written or read (no space, no permission, a damaged
    file). An ImageFolderError, so that every stage's CLI reports it as one line."""


def write_all(fd: int, data, pos: int) -> None:
    """pwrite all of data at byte pos (pwrite may write less than asked)."""
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], pos + done)


class RowFile:
    """An open file of rows. The descriptor is opened once, with the entry: a later deletion of
    the file (a newer cache entry replaced it) does not take the rows from a process reading them."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDONLY)
        weakref.finalize(self, os.close, self.fd)

    def read_rows(self, offset: int, row_shape: tuple, indices: np.ndarray) -> np.ndarray:
        """Rows ``indices`` of the array whose row 0 starts at byte ``offset``, in that order."""
        out = np.empty((len(indices), *row_shape), np.uint8)
        if not len(indices):
            return out
        row = out[0].nbytes
        # One preadv per run of consecutive indices: a sequential read (evaluation) is a few calls.
        breaks = np.flatnonzero(np.diff(indices) != 1) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(indices)]):
            view = memoryview(out[lo:hi]).cast("B")
            pos, done = offset + int(indices[lo]) * row, 0
            while done < len(view):
                n = os.preadv(self.fd, [view[done:]], pos + done)
                if n == 0:
                    raise CacheError(f"'{self.path}' is shorter than its index says: delete its folder, "
                                     f"and the next run decodes the images again")
                done += n
        return out


@dataclass(frozen=True)
class Rows:
    """Where a split's rows are: its row 0 starts at byte ``offset`` of ``file``."""
    file: RowFile
    offset: int

    def read(self, indices: np.ndarray, row_shape: tuple) -> np.ndarray:
        return self.file.read_rows(self.offset, row_shape, indices)
