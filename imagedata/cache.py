"""The decoded-image cache: a folder's images decoded once, at the model's resolution, and reused.

    entry, info = build_or_open(root_for(None), listing, rows, preprocessing, about={...})
    entry.images[0]     # (R, R, C) uint8, from a read-only memory map of images.npy

One entry, ``<cache>/<pixels>-<layout>/``:

* ``images.npy``: (rows, R, R, C) uint8, laid out split by split in the order the
  caller gives (train, val, calibration, test), so each split is one contiguous slice;
* ``labels.npy``: (rows,) int64 class index (-1 in the few unused rows that skipped
  images leave at the end of their split);
* ``index.json``: every file with its size, mtime, label, split and row (or why it
  could not be read), each split's row range, and what the build decoded and reused;
* ``complete.json``: the key and the byte count, written last.

The key is the sha256 of what shapes the pixels (resolution, channels,
interpolation, ``image.DECODER``: the decoding code's version and Pillow's) and of
every file in row order with its label, split, size and mtime. Any added, removed or
changed file, or another seed (which moves files between splits), is another key.
A file whose path, size and mtime are unchanged is taken as unchanged, as make and
rsync do. A new key is built from the entries with the same pixels: their rows are
copied and only the files they lack are decoded (``imagedata.decoding``, on every
core). Unreadable images are recorded with the reason, so a rerun with
--skip-bad-images does not decode them again. The entry it replaces (same folder,
same seed, same pixels) is then deleted; entries of other folders, seeds or
resolutions stay until you delete the cache folder.

An entry is built in ``.<name>.tmp-<pid>``, stamped last and renamed into place: a
Ctrl-C, a SIGKILL or a full disk (the file is allocated up front, so a disk that is
too small fails at once) leaves nothing that looks complete, and the next build
removes the leftovers. Builders of one key hold an exclusive ``flock``, which the
kernel releases when a process dies: a second process waits, then reuses the entry.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from imagedata.decoding import Progress, decode_into
from imagedata.folder import Listing
from imagedata.image import DECODER
from imagedata.preprocess import Preprocessing
from imagedata.rows import CacheError, RowFile, write_all
from pipeline.publish import fsync

__all__ = ["CacheError", "Entry", "build_or_open", "root_for", "ENV"]

ENV = "MOBILENET_DEPLOY_IMAGE_CACHE"   # overrides the default <cache dir>/images
PARALLEL_MIN = 1000                    # fewer images decode in one process (starting workers costs ~0.5 s)
STAMP, INDEX, IMAGES, LABELS = "complete.json", "index.json", "images.npy", "labels.npy"


def root_for(cache_dir=None) -> Path:
    """``cache_dir``/images when given, else $MOBILENET_DEPLOY_IMAGE_CACHE, else
    ``fashion_mnist.default_cache_dir()``/images (under $XDG_CACHE_HOME when it is set)."""
    from imagedata.fashion_mnist import default_cache_dir
    if cache_dir is not None:
        return Path(cache_dir) / "images"
    return Path(os.environ.get(ENV) or default_cache_dir() / "images")


def pixels_of(p: Preprocessing) -> dict:
    """What the decoded bytes depend on; mean and std come later and are not part of it."""
    return {"resolution": p.resolution, "channels": p.channels, "interpolation": p.interpolation,
            "decoder": DECODER}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"


@dataclass
class Entry:
    path: Path
    images: np.ndarray        # (rows, R, R, C) uint8, read-only np.memmap
    labels: np.ndarray        # (rows,) int64
    splits: dict              # {split: (first row, rows)}, bad images left out
    bad: list                 # [(relative path, reason)] of the images that could not be read
    index: dict               # index.json
    file: RowFile             # images.npy, open for pread
    offset: int               # byte offset of row 0 in images.npy


def _read_entry(path: Path, key: str) -> tuple[Entry | None, str | None]:
    """(entry, None) when complete and matching; (None, why) when damaged; (None, None) when absent."""
    try:
        stamp = json.loads((path / STAMP).read_text())
    except FileNotFoundError:
        return None, ("it has no completion stamp" if path.exists() else None)
    except (OSError, ValueError) as e:
        return None, f"its stamp is unreadable ({e})"
    try:
        index = json.loads((path / INDEX).read_text())
        images = np.load(path / IMAGES, mmap_mode="r")
        labels = np.load(path / LABELS)
        file = RowFile(path / IMAGES)
    except (OSError, ValueError) as e:
        return None, f"it cannot be read ({e})"
    if stamp.get("key") != key or index.get("key") != key or images.nbytes != stamp.get("image_bytes") \
            or len(labels) != len(images):
        return None, "its stamp does not match its contents"
    return Entry(path, images, labels, {k: tuple(v) for k, v in index["splits"].items()},
                 [(f[0], f[6]) for f in index["files"] if f[6] is not None], index, file, images.offset), None


@contextmanager
def _locked(root: Path, name: str, log: Callable, wait: bool = True):
    """An exclusive flock on <root>/.locks/<name>; yields False if it is busy and not ``wait``."""
    (root / ".locks").mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".locks" / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            log(f"data: waiting for process {holder}, which is decoding the same images into {root / name}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield True
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Renamed out of the way first: no reader ever finds a half-deleted entry under its name."""
    gone = path.with_name(f".{path.name}.del-{os.getpid()}")
    try:
        os.rename(path, gone)
    except FileNotFoundError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def _remove_leftovers(root: Path, name: str, log: Callable) -> None:
    """Temporary folders of builds that died (their name's lock is free; ``name``'s is ours)."""
    for tmp in root.glob(".*.tmp-*"):
        owner = tmp.name[1:].split(".tmp-")[0]
        if owner == name:
            shutil.rmtree(tmp, ignore_errors=True)
            continue
        with _locked(root, owner, log, wait=False) as free:
            if free:
                shutil.rmtree(tmp, ignore_errors=True)
    for gone in root.glob(".*.del-*"):
        shutil.rmtree(gone, ignore_errors=True)


def _entries(root: Path, prefix: str, exclude: str) -> list[Entry]:
    """Complete entries with these pixels, newest first."""
    found = []
    for d in root.glob(f"{prefix}-*"):
        if d.name == exclude:
            continue
        try:
            key = json.loads((d / STAMP).read_text())["key"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        entry, _ = _read_entry(d, key)
        if entry is not None:
            found.append(entry)
    return sorted(found, key=lambda e: e.index.get("created", ""), reverse=True)


def _allocate(path: Path, shape: tuple) -> tuple[int, int]:
    """Create the .npy with its header and reserve its bytes; returns (data offset, bytes)."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    offset, total = mm.offset, mm.nbytes
    del mm
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, offset, max(total, 1))
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        raise CacheError(f"not enough space in '{path.parent.parent}' for the decoded images "
                         f"({total / 2**20:.0f} MiB): free some, or set {ENV} to a folder on a disk "
                         f"with room") from None
    finally:
        os.close(fd)
    return offset, total


def _close_holes(fd: int, offset: int, row_bytes: int, splits: dict, errors: dict,
                 y: np.ndarray) -> tuple[dict, dict]:
    """Move each split's last good rows into the holes its bad images left, so the good rows are
    contiguous. Returns ({split: (start, good rows)}, {planned row: final row})."""
    kept, moved = {}, {}
    for name, (start, n) in splits.items():
        holes = [r for r in range(start, start + n) if errors.get(r)]
        good = n - len(holes)
        movers = [r for r in range(start + good, start + n) if not errors.get(r)]
        for src, dst in zip(movers, [h for h in holes if h < start + good]):
            write_all(fd, os.pread(fd, row_bytes, offset + src * row_bytes), offset + dst * row_bytes)
            y[dst], y[src] = y[src], -1
            moved[src] = dst
        kept[name] = (start, good)
    return kept, moved


def _build(tmp: Path, key: str, listing: Listing, rows: dict, p: Preprocessing, about: dict,
           donors: list, workers: int, progress: Progress, log: Callable) -> dict:
    """Write a complete entry into tmp (stamp last); returns its index."""
    order = [int(i) for idx in rows.values() for i in idx]   # row -> index into listing.files
    splits, start = {}, 0
    for name, idx in rows.items():
        splits[name], start = (start, len(idx)), start + len(idx)
    shape, row_bytes = p.input_shape, int(np.prod(p.input_shape))
    tmp.mkdir(parents=True)
    offset, total = _allocate(tmp / IMAGES, (len(order), *shape))

    # Rows an entry with the same pixels already holds are copied; the rest are decoded.
    have = {}
    for donor in donors:
        for f in donor.index["files"]:
            have.setdefault((f[0], f[1], f[2]), (donor, f[5], f[6]))
    errors, sources, todo = {}, set(), []
    fd = os.open(tmp / IMAGES, os.O_RDWR)
    try:
        for row, i in enumerate(order):
            f = listing.files[i]
            hit = have.get((f.rel, f.size, f.mtime_ns))
            if hit is None:
                todo.append((row, str(listing.path(f))))
                continue
            donor, donor_row, errors[row] = hit
            if errors[row] is None:
                write_all(fd, donor.file.read_rows(donor.offset, shape, np.array([donor_row])),
                          offset + row * row_bytes)
            sources.add(donor.path.name)
        workers = max(1, min(workers, len(todo) // 8 or 1))
        t0, cpu = time.perf_counter(), []
        if todo:
            if not progress.tty:
                log(f"data: decoding {_count(len(todo), 'image')} of {listing.root} at "
                    f"{'x'.join(map(str, shape))} in {_count(workers, 'process')} ...")
            try:
                decoded, cpu = decode_into(tmp / IMAGES, offset, shape, p.interpolation, todo, workers, progress)
                errors.update(decoded)
            except OSError as e:
                raise CacheError(f"cannot write the decoded images to '{tmp}': {e.strerror or e}") from None
        seconds = time.perf_counter() - t0
        label_index = {label: k for k, label in enumerate(listing.labels)}
        y = np.array([-1 if errors.get(row) else label_index[listing.files[i].label]
                      for row, i in enumerate(order)], np.int64)
        kept, moved = _close_holes(fd, offset, row_bytes, splits, errors, y)
        os.fsync(fd)
    finally:
        os.close(fd)
    np.save(tmp / LABELS, y)
    split_of = [name for name, (_, n) in splits.items() for _ in range(n)]
    files = [[f.rel, f.size, f.mtime_ns, f.label, split_of[row], None if errors.get(row) else moved.get(row, row),
              errors.get(row)] for row, f in ((row, listing.files[i]) for row, i in enumerate(order))]
    index = {"key": key, "pixels": pixels_of(p), "about": about, "files": files, "splits": kept,
             "decoded": len(todo), "reused": len(order) - len(todo), "reused_from": sorted(sources),
             "decode_seconds": round(seconds, 3), "workers": workers if todo else 0,
             "decode_cpu_seconds": [round(c, 3) for c in cpu],
             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (tmp / INDEX).write_text(json.dumps(index))
    for name in (LABELS, INDEX):
        fsync(tmp / name)
    (tmp / STAMP).write_text(json.dumps({"key": key, "image_bytes": total}))
    fsync(tmp / STAMP)
    return index


def _changes(listing: Listing, before: Entry) -> dict:
    old = {f[0]: (f[1], f[2]) for f in before.index["files"]}
    new = {f.rel: (f.size, f.mtime_ns) for f in listing.files}
    return {"added": sum(r not in old for r in new), "removed": sum(r not in new for r in old),
            "changed": sum(r in old and old[r] != v for r, v in new.items())}


def _remove_replaced(root: Path, prefix: str, keep: str, about: dict, log: Callable) -> list[str]:
    """Entries of the same folder, seed and pixels as ``keep``, which replaces them."""
    removed = []
    for d in root.glob(f"{prefix}-*"):
        try:
            if d.name == keep or json.loads((d / INDEX).read_text()).get("about") != about:
                continue
        except (OSError, ValueError):
            continue
        with _locked(root, d.name, log, wait=False) as free:
            if free:
                _remove(d)
                removed.append(d.name)
    return removed


def build_or_open(root: Path, listing: Listing, rows: dict, p: Preprocessing, about: dict,
                  workers: int | None = None, progress: Progress | None = None,
                  log: Callable = print) -> tuple[Entry, dict]:
    """The entry for these files in this row order at this preprocessing: opened, or built.

    ``rows`` is {split: indices into listing.files}, in the order the rows are laid out.
    ``about`` ({"source", "seed"}) names what a new build replaces. ``workers`` defaults to
    every core this process may use, and to one process below PARALLEL_MIN files.
    Returns (entry, what happened: the provenance the data set records).
    """
    progress = progress or Progress()
    pixels = pixels_of(p)
    prefix = _digest(pixels)[:12]
    key = _digest({"pixels": pixels, "rows": [[f.rel, f.size, f.mtime_ns, f.label, name] for name, idx in rows.items()
                                              for f in (listing.files[i] for i in idx)]})
    name = f"{prefix}-{key[:24]}"
    path = root / name
    entry, why = _read_entry(path, key)
    if entry is not None:
        return entry, {"key": key, "path": str(path), "status": "reused", "decoded": 0,
                       "built": entry.index["created"]}
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root, name, log):
            entry, why = _read_entry(path, key)
            if entry is not None:   # built by another process while this one waited for the lock
                return entry, {"key": key, "path": str(path), "status": "reused", "decoded": 0,
                               "built": entry.index["created"]}
            if why:
                log(f"data: the cache {path} is unusable ({why}); building it again")
                _remove(path)
            _remove_leftovers(root, name, log)
            donors = _entries(root, prefix, exclude=name)
            if workers is None:
                workers = len(os.sched_getaffinity(0)) if len(listing.files) >= PARALLEL_MIN else 1
            tmp = root / f".{name}.tmp-{os.getpid()}"
            t0 = time.perf_counter()
            try:
                index = _build(tmp, key, listing, rows, p, about, donors, workers, progress, log)
                os.rename(tmp, path)
                fsync(root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            seconds = time.perf_counter() - t0
            entry, why = _read_entry(path, key)
            if entry is None:
                raise CacheError(f"the image cache just written to '{path}' cannot be read back ({why})")
    except OSError as e:
        raise CacheError(f"cannot write the image cache in '{root}': {e} "
                         f"(set {ENV} to a writable folder with room)") from None

    info = {"key": key, "path": str(path), "status": "built", "decoded": index["decoded"],
            "reused": index["reused"], "reused_from": index["reused_from"], "seconds": round(seconds, 2),
            "workers": index["workers"], "decode_cpu_seconds": index["decode_cpu_seconds"],
            "built": index["created"]}
    before = next((d for d in donors if d.index.get("about") == about), donors[0] if donors else None)
    shape = "x".join(map(str, p.input_shape))
    if before is None:
        rate = index["decoded"] / max(index["decode_seconds"], 1e-9)
        log(f"data: decoded {_count(index['decoded'], 'image')} of {listing.root} at {shape} in {seconds:.1f} s "
            f"({rate:.0f} images/s, {_count(index['workers'], 'process')}) into {path}")
    else:
        info.update(_changes(listing, before))
        log(f"data: {_count(info['added'], 'image')} added, {info['changed']} changed, {info['removed']} removed "
            f"since {before.path}: decoded {index['decoded']}, reused {index['reused']}, in {seconds:.1f} s, "
            f"into {path}")
    info["replaced"] = _remove_replaced(root, prefix, name, about, log)
    return entry, info
