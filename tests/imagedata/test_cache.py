"""The decoded-image cache: hits, misses, invalidation, parallel decoding, interrupted and concurrent builds."""
from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagedata.cache import ENV, CacheError
from imagedata.decoding import PAUSE_ENV
from imagedata.dataset import SPLITS, load_dataset
from imagedata.preprocess import Preprocessing
from tests.conftest import ROOT

P = Preprocessing(resolution=24, channels=3)

# A stage in a fresh process: load the folder, print the digest of every split.
LOADER = """
import hashlib, sys
import numpy as np
from imagedata.dataset import load_dataset
from imagedata.preprocess import Preprocessing
ds = load_dataset(sys.argv[1], Preprocessing(resolution=24, channels=3), cache_dir=sys.argv[2],
                  skip_bad_images=True, workers=int(sys.argv[3]))
h = hashlib.sha256()
for k in ("train", "val", "calibration", "test"):
    s = getattr(ds, k)
    h.update(np.ascontiguousarray(s.x).tobytes()); h.update(s.y.tobytes())
print(h.hexdigest())
"""


def digest(ds) -> str:
    h = hashlib.sha256()
    for k in SPLITS:
        s = getattr(ds, k)
        h.update(np.ascontiguousarray(s.x).tobytes())
        h.update(s.y.tobytes())
    return h.hexdigest()


def entries(cache: Path) -> list[Path]:
    """Entries that look complete."""
    d = cache / "images"
    return sorted(e for e in d.iterdir() if not e.name.startswith(".") and (e / "complete.json").exists()) \
        if d.is_dir() else []


def leftovers(cache: Path) -> list[Path]:
    d = cache / "images"
    return sorted(e for e in d.iterdir() if e.name.startswith(".") and e.name != ".locks") if d.is_dir() else []


def load(root, cache, **kw):
    kw.setdefault("skip_bad_images", True)
    return load_dataset(str(root), kw.pop("p", P), cache_dir=cache, **kw)


def loader(root, cache, workers=1, env=None):
    return subprocess.Popen([sys.executable, "-c", LOADER, str(root), str(cache), str(workers)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


class Lines:
    """A subprocess's stderr, read by a thread: wait for a line, then get all of it."""

    def __init__(self, stream):
        self._queue: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in iter(stream.readline, ""):
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout=60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not printed; got {''.join(self.seen)!r}")

    def all(self) -> str:
        self._thread.join(60)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)


def test_second_load_is_a_hit(fashion_folder, tmp_path, capsys):
    root = fashion_folder()
    a = load(root, tmp_path / "c")
    assert a.provenance["cache"]["status"] == "built" and a.provenance["cache"]["decoded"] == 37
    assert f"data: decoded 37 images of {root} at 24x24x3" in capsys.readouterr().err
    b = load(root, tmp_path / "c")
    assert b.provenance["cache"]["status"] == "reused" and b.provenance["cache"]["decoded"] == 0
    assert "data: reused 36 decoded images" in capsys.readouterr().err
    assert digest(a) == digest(b) and len(entries(tmp_path / "c")) == 1
    assert b.provenance["skipped_images"] == [str(root / "T-shirt_top" / "corrupt.jpg")]
    assert isinstance(b.train.x, np.memmap) and not b.train.x.flags.writeable


def test_added_changed_and_removed_files_decode_only_those(fashion_folder, tmp_path, capsys):
    root = fashion_folder()
    load(root, tmp_path / "c")
    capsys.readouterr()

    Image.new("RGB", (30, 30), (200, 10, 10)).save(root / "Trouser" / "new.png")
    added = load(root, tmp_path / "c")
    assert (added.provenance["cache"]["decoded"], added.provenance["cache"]["reused"]) == (1, 37)
    assert "1 image added, 0 changed, 0 removed since" in capsys.readouterr().err

    changed = root / "Pullover" / "0003.jpg"
    Image.new("RGB", (56, 56), (0, 90, 200)).save(changed, quality=50)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    after_change = load(root, tmp_path / "c")
    assert (after_change.provenance["cache"]["decoded"], after_change.provenance["cache"]["changed"]) == (1, 1)

    (root / "Trouser" / "0001.jpg").unlink()
    removed = load(root, tmp_path / "c")
    assert removed.provenance["cache"]["decoded"] == 0 and removed.provenance["cache"]["removed"] == 1
    # Each build replaced the one before it, and equals decoding from scratch.
    assert len(entries(tmp_path / "c")) == 1
    assert digest(removed) == digest(load(root, tmp_path / "fresh"))


def test_another_resolution_or_seed(fashion_folder, tmp_path):
    root = fashion_folder()
    a = load(root, tmp_path / "c")
    b = load(root, tmp_path / "c", p=Preprocessing(resolution=16, channels=3))
    assert b.provenance["cache"]["decoded"] == 37 and b.train.x.shape[1:] == (16, 16, 3)
    c = load(root, tmp_path / "c", seed=5)   # other splits, same pixels: nothing decoded
    assert c.provenance["cache"]["status"] == "built" and c.provenance["cache"]["decoded"] == 0
    assert digest(c) != digest(a)
    assert len(entries(tmp_path / "c")) == 3   # other resolutions and seeds are kept
    assert load(root, tmp_path / "c").provenance["cache"]["status"] == "reused"


def test_parallel_decoding_equals_serial_byte_for_byte(fashion_folder, tmp_path):
    root = fashion_folder(per_class=20)
    serial = load(root, tmp_path / "one", workers=1)
    parallel = load(root, tmp_path / "two", workers=2)
    assert parallel.provenance["cache"]["workers"] == 2 and serial.provenance["cache"]["workers"] == 1
    (a,), (b,) = entries(tmp_path / "one"), entries(tmp_path / "two")
    assert a.name == b.name
    for f in ("images.npy", "labels.npy"):
        assert (a / f).read_bytes() == (b / f).read_bytes()
    ia, ib = (json.loads((e / "index.json").read_text()) for e in (a, b))
    assert ia["files"] == ib["files"] and ia["splits"] == ib["splits"]


def test_splits_are_deterministic_and_calibration_is_not_test(fashion_folder, tmp_path):
    root = fashion_folder(per_class=40, corrupt=False)
    a, b = load(root, tmp_path / "a"), load(root, tmp_path / "b")
    assert digest(a) == digest(b)
    rows = {k: {r.tobytes() for r in np.asarray(getattr(a, k).x)} for k in SPLITS}
    assert not rows["calibration"] & rows["test"] and not rows["train"] & rows["test"]
    assert sum(len(getattr(a, k)) for k in SPLITS) == 120


def test_bad_images_are_remembered(fashion_folder, tmp_path, capsys):
    root = fashion_folder()
    corrupt = root / "T-shirt_top" / "corrupt.jpg"
    with pytest.raises(Exception, match=f"cannot read image '{corrupt}': image file is truncated"):
        load(root, tmp_path / "c", skip_bad_images=False)
    ds = load(root, tmp_path / "c")   # the failed load still cached what it decoded
    assert ds.provenance["cache"]["status"] == "reused"
    assert f"skipped 1 unreadable image(s) (--skip-bad-images), first: {corrupt}" in capsys.readouterr().err


def test_damaged_entry_is_rebuilt(fashion_folder, tmp_path, capsys):
    root = fashion_folder()
    reference = digest(load(root, tmp_path / "c"))
    (entry,) = entries(tmp_path / "c")
    with open(entry / "images.npy", "r+b") as f:
        f.truncate(1000)
    ds = load(root, tmp_path / "c")
    assert "is unusable (it cannot be read" in capsys.readouterr().err
    assert ds.provenance["cache"]["status"] == "built" and digest(ds) == reference


def test_default_location_follows_xdg_cache_home(fashion_folder, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    ds = load_dataset(str(fashion_folder(corrupt=False)), P)
    assert Path(ds.provenance["cache"]["path"]).parent == tmp_path / "xdg" / "mobilenet-deploy" / "images"
    monkeypatch.setenv(ENV, str(tmp_path / "elsewhere"))
    ds = load_dataset(str(fashion_folder(tmp_path / "f2", corrupt=False)), P)
    assert Path(ds.provenance["cache"]["path"]).parent == tmp_path / "elsewhere"


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_decode_leaves_nothing_that_looks_complete(fashion_folder, tmp_path, workers):
    root, cache = fashion_folder(per_class=30, corrupt=False), tmp_path / "c"
    proc = loader(root, cache, workers, env={PAUSE_ENV: "20"})
    try:
        Lines(proc.stderr).wait_for(PAUSE_ENV)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert entries(cache) == []
    assert [p.name.split(".tmp-")[1] for p in leftovers(cache)] == [str(proc.pid)]   # it was mid-build
    ds = load(root, cache, workers=workers)
    assert ds.provenance["cache"]["decoded"] == 90 and leftovers(cache) == []
    assert digest(ds) == digest(load(root, tmp_path / "reference"))


def test_ctrl_c_mid_decode_removes_its_temporary_folder(fashion_folder, tmp_path):
    root, cache = fashion_folder(per_class=30, corrupt=False), tmp_path / "c"
    proc = loader(root, cache, 2, env={PAUSE_ENV: "20"})
    Lines(proc.stderr).wait_for(PAUSE_ENV)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert entries(cache) == [] and leftovers(cache) == []
    # no decoding worker outlives it
    assert subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True).stdout == b""


def test_two_processes_decoding_the_same_images(fashion_folder, tmp_path):
    root, cache = fashion_folder(per_class=30), tmp_path / "c"
    resume = tmp_path / "resume"
    first = loader(root, cache, 2, env={PAUSE_ENV: f"20:{resume}"})
    log1 = Lines(first.stderr)
    log1.wait_for(PAUSE_ENV)
    second = loader(root, cache, 2)
    log2 = Lines(second.stderr)
    log2.wait_for("data: waiting for process")
    resume.touch()
    out1, out2 = first.stdout.read(), second.stdout.read()
    first.wait(60), second.wait(60)
    err1, err2 = log1.all(), log2.all()
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    assert f"waiting for process {first.pid}" in err2
    assert "data: decoded" not in err2 and "data: reused" in err2
    assert out1 == out2 == digest(load(root, tmp_path / "reference")) + "\n"
    assert len(entries(cache)) == 1 and leftovers(cache) == []


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a small tmpfs needs root")
def test_full_disk_is_one_clear_error_and_leaves_nothing(fashion_folder, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        root = fashion_folder(corrupt=False)
        with pytest.raises(CacheError, match=r"not enough space in .* for the decoded images \(1 MiB\)"):
            load(root, small, p=Preprocessing(resolution=96, channels=3))   # 36 x 27 KiB
        assert entries(small) == [] and leftovers(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_later_stages_reuse_the_cache_and_skip_what_training_skipped(fashion_folder, capsys):
    from quantize.source import load_data
    root = fashion_folder()
    trained = load_dataset(str(root), P, skip_bad_images=True)   # as train fit --skip-bad-images
    record = {"config": {"data": str(root), "seed": 0}, "preprocessing": P.to_dict(),
              "labels": trained.labels, "data": trained.describe()}
    capsys.readouterr()
    later = load_data(record)                                   # as quantize and export
    assert later.provenance["cache"]["status"] == "reused" and digest(later) == digest(trained)
    assert "data: reused 36 decoded images" in capsys.readouterr().err
