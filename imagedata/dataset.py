"""Load a data set into the four splits every stage uses.

    ds = load_dataset("fashion_mnist", Preprocessing(resolution=32, channels=1))
    ds.train.x   # (54000, 32, 32, 1) uint8, already resized

Splits:
* ``train``: what the optimizer sees;
* ``val``: checkpoint selection and, in quantize, accuracy budgets;
* ``calibration``: the representative set for full-integer quantization. It is
  carved from the training images, never from test: calibrating on the test
  split leaks it into the int8 model's ranges and flatters its test accuracy;
* ``test``: reported once, at the end.
Every split is a deterministic function of the files and the seed.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from imagedata import fashion_mnist, folder
from imagedata.preprocess import Preprocessing

CALIBRATION_MAX = 1000     # images held out of training for calibration
VAL_FRACTION = 0.1         # of the training images, when the data has no val split
TEST_FRACTION = 0.1        # of all images, when the data has no test split
FASHION_MNIST_VAL = 5000


@dataclass(frozen=True)
class Split:
    x: np.ndarray   # (N, H, W, C) uint8
    y: np.ndarray   # (N,) int64 class index

    def __len__(self):
        return len(self.y)

    def take(self, n: int) -> "Split":
        return Split(self.x[:n], self.y[:n])

    def batch(self, indices) -> np.ndarray:
        """(len(indices), H, W, C) uint8 copy of the images at ``indices``, in ascending index order
        (sorted reads are the cheap ones from a memory-mapped cache). Pair labels as
        ``y[np.sort(indices)]``."""
        return self.x[np.sort(indices)]


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
                "sizes": {k: len(getattr(self, k)) for k in ("train", "val", "calibration", "test")}}


def _resize_gray(x: np.ndarray, p: Preprocessing) -> np.ndarray:
    """(N, h, w) uint8 grayscale -> (N, R, R, C) uint8 with Pillow's resampling."""
    if x.shape[1:] != (p.resolution, p.resolution):
        r = folder.RESAMPLE[p.interpolation]
        x = np.stack([np.asarray(Image.fromarray(im).resize((p.resolution, p.resolution), r)) for im in x])
    x = x[..., None]
    return np.repeat(x, 3, axis=-1) if p.channels == 3 else x


def _permute(n: int, seed: int, salt: str) -> np.ndarray:
    # The salt keeps the permutations of different splits independent of each other.
    s = int.from_bytes(hashlib.sha256(f"{seed}:{salt}".encode()).digest()[:8], "little")
    return np.random.default_rng(s).permutation(n)


def _carve(s: Split, n: int, seed: int, salt: str) -> tuple[Split, Split]:
    """Split off n seeded-random images: (rest, carved)."""
    perm = _permute(len(s), seed, salt)
    keep, out = np.sort(perm[n:]), np.sort(perm[:n])
    return Split(s.x[keep], s.y[keep]), Split(s.x[out], s.y[out])


def _load_fashion_mnist(p: Preprocessing, seed: int, cache_dir) -> Dataset:
    arrays, prov = fashion_mnist.load(cache_dir)
    train = Split(_resize_gray(arrays["x_train"], p), arrays["y_train"].astype(np.int64))
    test = Split(_resize_gray(arrays["x_test"], p), arrays["y_test"].astype(np.int64))
    train, val = _carve(train, FASHION_MNIST_VAL, seed, "val")
    train, calib = _carve(train, CALIBRATION_MAX, seed, "calibration")
    return Dataset(list(fashion_mnist.LABELS), train, val, calib, test, p, prov)


def _load_folder(root: Path, p: Preprocessing, seed: int, skip_bad: bool, progress) -> Dataset:
    parts = folder.layout(root)
    trees = {name: folder.class_folders(path) for name, path in parts.items()}
    labels = list(trees.get("train", trees.get("all")))
    read, skipped = {}, []
    for name, tree in trees.items():
        total = sum(len(v) for v in tree.values())
        with progress(total=total, desc=f"decoding {name} images", unit="img") as bar:
            xs, ys = [], []
            for label, paths in tree.items():   # one class at a time, for the progress bar
                x, y, bad = folder.read_images({label: paths}, labels, p.resolution, p.channels,
                                               p.interpolation, skip_bad)
                xs.append(x)
                ys.append(y)
                skipped.extend(bad)
                bar.update(len(paths))
        split = Split(np.concatenate(xs), np.concatenate(ys))
        if len(split) == 0:
            raise folder.ImageFolderError(f"no readable images under '{parts[name]}'")
        read[name] = split
    if "all" in read:
        rest, test = _carve(read["all"], max(1, round(TEST_FRACTION * len(read["all"]))), seed, "test")
    else:
        rest = read["train"]
        test = read.get("test", read.get("val"))
    if "val" in read and "test" in read:
        val = read["val"]
    else:
        rest, val = _carve(rest, max(1, round(VAL_FRACTION * len(rest))), seed, "val")
    n_calib = min(CALIBRATION_MAX, max(1, len(rest) // 10))
    train, calib = _carve(rest, n_calib, seed, "calibration")
    if len(train) == 0:
        raise folder.ImageFolderError(f"data dir '{root}' has too few images to split "
                                      f"({len(rest)} left for training)")
    digest = hashlib.sha256()
    for name, tree in sorted(trees.items()):
        for label, paths in tree.items():
            for f in paths:
                digest.update(f"{f.relative_to(root)}:{f.stat().st_size}\n".encode())
    prov = {"name": "folder", "source": str(Path(root).resolve()), "layout": sorted(parts),
            "files_sha256": digest.hexdigest(), "skipped_images": [str(b) for b in skipped]}
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s) (--skip-bad-images), first: {skipped[0]}")
    return Dataset(labels, train, val, calib, test, p, prov)


def load_dataset(data: str, preprocessing: Preprocessing, seed: int = 0, cache_dir=None,
                 skip_bad_images: bool = False, progress=None) -> Dataset:
    """``data`` is ``fashion_mnist`` or a folder in the ImageNet layout."""
    if data == fashion_mnist.NAME:
        return _load_fashion_mnist(preprocessing, seed, cache_dir)
    quiet = partial(tqdm, disable=True)
    return _load_folder(Path(data), preprocessing, seed, skip_bad_images, progress or quiet)
