"""Fashion-MNIST: 60k train and 10k test 28x28 grayscale images of 10 clothing classes.

    x_train, y_train, x_test, y_test = load()   # uint8 arrays, labels 0..9

Where the IDX files come from, first hit wins:
1. ``/usr/share/datasets/fashion-mnist``, Debian's ``dataset-fashion-mnist`` package;
2. the same package fetched with ``apt-get download`` and unpacked with
   ``dpkg-deb -x`` into the cache folder (no root needed);
3. off Debian and online, keras' own download (needs TensorFlow; host only).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from imagedata.idx import read_idx

NAME = "fashion_mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
         "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
DEBIAN_PACKAGE = "dataset-fashion-mnist"
PACKAGE_SUBDIR = "usr/share/datasets/fashion-mnist"   # inside the .deb
SYSTEM_DIR = Path("/") / PACKAGE_SUBDIR


class DataUnavailable(RuntimeError):
    pass


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mobilenet-deploy"


def _has_files(d: Path) -> bool:
    return all((d / f).is_file() for f in FILES.values())


def _apt_fetch(cache_dir: Path) -> Path:
    """apt-get download + dpkg-deb -x into cache_dir; returns the IDX folder."""
    target = cache_dir / DEBIAN_PACKAGE
    idx_dir = target / PACKAGE_SUBDIR
    if _has_files(idx_dir):
        return idx_dir
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise DataUnavailable("apt-get/dpkg-deb not found (not Debian or Ubuntu)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        r = subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=tmp,
                           capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if r.returncode != 0 or not debs:
            raise DataUnavailable(f"`apt-get download {DEBIAN_PACKAGE}` failed: {r.stderr.strip()[-300:]}"
                                  " (as root, `apt-get update` first)")
        unpacked = Path(tmp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True)
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)  # complete or absent, never half-unpacked
    return idx_dir


def locate(cache_dir: Path | None = None) -> Path:
    """Folder holding the four IDX files, fetching the Debian package if needed."""
    if _has_files(SYSTEM_DIR):
        return SYSTEM_DIR
    return _apt_fetch(cache_dir or default_cache_dir())


def _keras_download():
    from keras.datasets import fashion_mnist  # host-only fallback, needs network
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def load(cache_dir: Path | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Returns ({x_train, y_train, x_test, y_test}, provenance)."""
    try:
        folder = locate(cache_dir)
    except DataUnavailable as apt_error:
        try:
            arrays = _keras_download()
        except Exception as e:
            raise DataUnavailable(
                f"Fashion-MNIST not found. Install it with `apt-get install {DEBIAN_PACKAGE}`, "
                f"or let this tool fetch it ({apt_error}), or go online for keras' download ({e}).") from None
        return arrays, {"name": NAME, "source": "keras.datasets.fashion_mnist"}
    arrays, sha = {}, {}
    for key, fname in FILES.items():
        path = folder / fname
        arrays[key] = read_idx(path)
        sha[fname] = hashlib.sha256(path.read_bytes()).hexdigest()
        if arrays[key].shape != SHAPES[key]:
            raise DataUnavailable(f"{path} holds {arrays[key].shape}, Fashion-MNIST has {SHAPES[key]}")
    return arrays, {"name": NAME, "source": str(folder), "sha256": sha}
