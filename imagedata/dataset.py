"""Load a data set into the four splits every stage uses.

    ds = load_dataset("fashion_mnist", Preprocessing(resolution=32, channels=1))
    ds.train.x                    # (54000, 32, 32, 1) uint8, already resized
    ds.train.batch(np.array([3, 1, 4]))   # (3, 32, 32, 1) uint8, a copy of those rows

Splits:
* ``train``: what the optimizer sees;
* ``val``: checkpoint selection and, in quantize, accuracy budgets;
* ``calibration``: the representative set for full-integer quantization. It is
  carved from the training images, never from test: calibrating on the test
  split leaks it into the int8 model's ranges and flatters its test accuracy;
* ``test``: reported once, at the end.
Every split is a deterministic function of the files and the seed.

Fashion-MNIST (70k images of 28x28) sits in memory. A folder is decoded once into
the on-disk cache of ``imagedata.cache`` and each split is a read-only memory-mapped
slice of it: the split assignment depends only on the file list, the labels and the
seed, so it is decided before decoding and the cache is laid out split by split.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from imagedata import cache, fashion_mnist, folder
from imagedata.decoding import Progress
from imagedata.folder import ImageFolderError
from imagedata.image import RESAMPLE
from imagedata.preprocess import Preprocessing
from imagedata.rows import Rows

CALIBRATION_MAX = 1000     # images held out of training for calibration
VAL_FRACTION = 0.1         # of the training images, when the data has no val split
TEST_FRACTION = 0.1        # of all images, when the data has no test split
FASHION_MNIST_VAL = 5000
SPLITS = ("train", "val", "calibration", "test")   # also the order of the rows in the cache


@dataclass(frozen=True)
class Split:
    x: np.ndarray   # (N, H, W, C) uint8: in memory, or a read-only np.memmap slice of the image cache
    y: np.ndarray   # (N,) int64 class index
    rows: Rows | None = field(default=None, repr=False, compare=False)   # x's rows on disk

    def __len__(self):
        return len(self.y)

    def take(self, n: int) -> "Split":
        return Split(self.x[:n], self.y[:n], self.rows)

    def batch(self, indices) -> np.ndarray:
        """(len(indices), H, W, C) uint8: an in-memory copy of these rows, in this order.

        What training calls once per batch. A split of the cache reads the rows with
        pread instead of through the memory map: pages touched through a map stay mapped
        and count in the process's RSS until the whole split is resident, while pread's
        pages stay in the kernel's page cache, which memory pressure reclaims. So RSS
        stays at a batch whatever the split's size, and rows read before come from the
        page cache at memory speed.
        """
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"indices must be a 1-D array of integers, got {idx.dtype} of shape {idx.shape}")
        idx = np.where(idx < 0, idx + len(self), idx).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices must be in [{-len(self)}, {len(self)}) for a split of {len(self)} images")
        if self.rows is None:
            return np.ascontiguousarray(self.x[idx])
        return self.rows.read(idx, self.x.shape[1:])


@dataclass
class Dataset:
    labels: list[str]
    train: Split
    val: Split
    calibration: Split
    test: Split
    preprocessing: Preprocessing
    provenance: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {**self.provenance, "labels": self.labels,
                "sizes": {k: len(getattr(self, k)) for k in SPLITS}}


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _resize_gray(x: np.ndarray, p: Preprocessing) -> np.ndarray:
    """(N, h, w) uint8 grayscale -> (N, R, R, C) uint8 with Pillow's resampling."""
    if x.shape[1:] != (p.resolution, p.resolution):
        r = RESAMPLE[p.interpolation]
        x = np.stack([np.asarray(Image.fromarray(im).resize((p.resolution, p.resolution), r)) for im in x])
    x = x[..., None]
    return np.repeat(x, 3, axis=-1) if p.channels == 3 else x


def _permute(n: int, seed: int, salt: str) -> np.ndarray:
    # The salt keeps the permutations of different splits independent of each other.
    s = int.from_bytes(hashlib.sha256(f"{seed}:{salt}".encode()).digest()[:8], "little")
    return np.random.default_rng(s).permutation(n)


def _carve(idx: np.ndarray, n: int, seed: int, salt: str) -> tuple[np.ndarray, np.ndarray]:
    """Split off n seeded-random members of idx: (rest, carved), each in idx's order."""
    perm = _permute(len(idx), seed, salt)
    return idx[np.sort(perm[n:])], idx[np.sort(perm[:n])]


def _carve_split(s: Split, n: int, seed: int, salt: str) -> tuple[Split, Split]:
    keep, out = _carve(np.arange(len(s)), n, seed, salt)
    return Split(s.x[keep], s.y[keep]), Split(s.x[out], s.y[out])


def _load_fashion_mnist(p: Preprocessing, seed: int, cache_dir) -> Dataset:
    arrays, prov = fashion_mnist.load(cache_dir)
    train = Split(_resize_gray(arrays["x_train"], p), arrays["y_train"].astype(np.int64))
    test = Split(_resize_gray(arrays["x_test"], p), arrays["y_test"].astype(np.int64))
    train, val = _carve_split(train, FASHION_MNIST_VAL, seed, "val")
    train, calib = _carve_split(train, CALIBRATION_MAX, seed, "calibration")
    return Dataset(list(fashion_mnist.LABELS), train, val, calib, test, p, prov)


def plan_splits(listing: folder.Listing, seed: int) -> dict[str, np.ndarray]:
    """{split: indices into listing.files}, decided from the file list alone, before decoding.

    A flat folder gives TEST_FRACTION of its images to test; DIR/train with DIR/val (or
    DIR/test) uses the given folder as test, and DIR/val as val when both exist. val is
    otherwise VAL_FRACTION of the rest, and calibration up to CALIBRATION_MAX of what is
    left, so it never holds a test image. Unreadable images keep their place here and
    are only dropped from their split: skipping one does not reshuffle the others.
    """
    parts = {name: np.array([i for i, f in enumerate(listing.files) if f.part == name], np.int64)
             for name in listing.parts}
    if "all" in parts:
        rest, test = _carve(parts["all"], max(1, round(TEST_FRACTION * len(parts["all"]))), seed, "test")
    else:
        rest, test = parts["train"], parts.get("test", parts.get("val"))
    if "val" in parts and "test" in parts:
        val = parts["val"]
    else:
        rest, val = _carve(rest, max(1, round(VAL_FRACTION * len(rest))), seed, "val")
    train, calib = _carve(rest, min(CALIBRATION_MAX, max(1, len(rest) // 10)), seed, "calibration")
    if len(train) == 0:
        raise ImageFolderError(f"data dir '{listing.root}' has too few images to split "
                               f"({len(rest)} left for training)")
    return {"train": train, "val": val, "calibration": calib, "test": test}


def _files_sha256(listing: folder.Listing) -> str:
    """Names and sizes, the fingerprint later stages compare with model.json's."""
    digest = hashlib.sha256()
    for part in sorted(listing.parts):
        for f in listing.files:
            if f.part == part:
                digest.update(f"{f.rel}:{f.size}\n".encode())
    return digest.hexdigest()


def _check_readable(listing: folder.Listing, bad: list, skip_bad: bool) -> None:
    """Bad images are an error naming them, unless skipped; every class keeps an image."""
    if bad and not skip_bad:
        (rel, reason), more = bad[0], [str(listing.root / r) for r, _ in bad[1:]]
        tail = f"; {len(more)} more: {', '.join(more[:5])}{' ...' if len(more) > 5 else ''}" if more else ""
        raise ImageFolderError(f"cannot read image '{listing.root / rel}': {reason} "
                               f"(fix or remove it, or pass --skip-bad-images){tail}")
    unreadable = {r for r, _ in bad}
    main = "train" if "train" in listing.parts else "all"
    readable, first = dict.fromkeys(listing.labels, 0), {}
    for f in listing.files:
        if f.part == main:
            readable[f.label] += f.rel not in unreadable
            first.setdefault(f.label, f.rel)
    for label, n in readable.items():
        if n == 0:
            raise ImageFolderError(
                f"class '{label}' has no readable images left after skipping its bad ones "
                f"(first: {listing.root / first[label]}): fix them, or remove {listing.parts[main] / label}")


def _load_folder(root: Path, p: Preprocessing, seed: int, skip_bad: bool, progress, cache_dir,
                 workers: int | None) -> Dataset:
    listing = folder.scan(root)
    rows = plan_splits(listing, seed)
    about = {"source": str(Path(root).resolve()), "seed": seed}
    entry, info = cache.build_or_open(cache.root_for(cache_dir), listing, rows, p, about, workers,
                                      Progress(progress), _log)
    if info["status"] == "reused":
        _log(f"data: reused {sum(n for _, n in entry.splits.values())} decoded images of {root} "
             f"at {'x'.join(map(str, p.input_shape))} from {entry.path}")
    _check_readable(listing, entry.bad, skip_bad)
    row_bytes = int(np.prod(p.input_shape))
    splits = {}
    for name in SPLITS:
        start, n = entry.splits[name]
        if n == 0:
            raise ImageFolderError(f"the {name} split of '{root}' has no readable images left after "
                                   f"skipping bad ones: add images or fix the bad ones")
        splits[name] = Split(entry.images[start:start + n], np.array(entry.labels[start:start + n]),
                             Rows(entry.file, entry.offset + start * row_bytes))
    skipped = [str(listing.root / rel) for rel, _ in entry.bad]
    prov = {"name": "folder", "source": about["source"], "layout": sorted(listing.parts),
            "files_sha256": _files_sha256(listing), "skipped_images": skipped, "cache": info}
    if skipped:
        _log(f"skipped {len(skipped)} unreadable image(s) (--skip-bad-images), first: {skipped[0]}")
    return Dataset(listing.labels, *(splits[k] for k in SPLITS), p, prov)


def load_dataset(data: str, preprocessing: Preprocessing, seed: int = 0, cache_dir=None,
                 skip_bad_images: bool = False, progress=None, workers: int | None = None) -> Dataset:
    """``data`` is ``fashion_mnist`` or a folder in the ImageNet layout.

    A folder's images are decoded into the cache (``imagedata.cache``) the first time and
    reused by every later stage: in ``cache_dir``/images when given, else in
    $MOBILENET_DEPLOY_IMAGE_CACHE, else in ``fashion_mnist.default_cache_dir()``/images.
    ``workers`` is the number of decoding processes (default: every core). ``progress`` is
    a tqdm-like class, shown only when stderr is a terminal; a log gets one line instead.
    ``skip_bad_images`` drops unreadable images (listed in the provenance) instead of
    raising; the splits of the other images stay where they were.
    """
    if data == fashion_mnist.NAME:
        return _load_fashion_mnist(preprocessing, seed, cache_dir)
    return _load_folder(Path(data), preprocessing, seed, skip_bad_images, progress, cache_dir, workers)
