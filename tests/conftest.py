"""Shared fixtures: tiny synthetic data sets and image folders."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_blobs(n: int, resolution: int, channels: int, classes: int, seed: int = 0):
    """A learnable toy task: class k is a bright square in quadrant k (plus noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, resolution, resolution, channels)).astype(np.uint8)
    h = resolution // 2
    for i, k in enumerate(y):
        r, c = divmod(int(k) % 4, 2)
        x[i, r * h:(r + 1) * h, c * h:(c + 1) * h] += 180
    return x, y.astype(np.int64)


def online(host="storage.googleapis.com", port=443, timeout=3.0) -> bool:
    """Whether a TCP connection to host:port opens: the test machine's view of the internet."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(config, items):
    network = [i for i in items if "network" in i.keywords]
    if network and not online():
        skip = pytest.mark.skip(reason="offline: storage.googleapis.com (keras weights and data) is unreachable")
        for item in network:
            item.add_marker(skip)


@pytest.fixture
def image_folder(tmp_path):
    """tmp/<label>/*.png|jpg, three classes of six 20x24 images each."""
    def make(root: Path = tmp_path / "imgs", classes=("cat", "dog", "fox"), per_class=6):
        rng = np.random.default_rng(1)
        for k, label in enumerate(classes):
            d = root / label
            d.mkdir(parents=True)
            for i in range(per_class):
                a = rng.integers(0, 255, (20, 24, 3)).astype(np.uint8)
                a[..., k % 3] = 250
                ext = "png" if i % 2 else "jpg"
                Image.fromarray(a).save(d / f"{i}.{ext}")
        return root
    return make


def python39():
    """A working Python 3.9 interpreter, or None (pyenv's shim exists even when 3.9 is not active)."""
    pyenv = Path.home().glob(".pyenv/versions/3.9*/bin/python3.9")
    candidates = [shutil.which("python3.9"), *map(str, pyenv)]
    for exe in filter(None, candidates):
        r = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] == (3, 9))"],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip() == "True":
            return exe
    return None
