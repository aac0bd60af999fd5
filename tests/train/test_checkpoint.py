"""Killed, interrupted, concurrent and out of space: `train fit` as real processes, and what they leave on disk."""
import hashlib
import os
import signal
import subprocess
from contextlib import contextmanager

import numpy as np
import pytest

from tests.train import procs
from train.checkpoint import BEST, LAST, STATE, read_state

EPOCHS = ["--epochs", "3", *procs.ONE_DEVICE]


def _digests(ckpt):
    return {f: hashlib.sha256((ckpt / f).read_bytes()).hexdigest() for f in (LAST, BEST, STATE)}


def _weights(path):
    import keras
    return keras.models.load_model(path).get_weights()


def _clean(result):
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text[-3000:]
    return text


@pytest.fixture(scope="module")
def reference(tmp_path_factory, blob_folder):
    out = tmp_path_factory.mktemp("reference")
    text = _clean(procs.run(procs.fit_args(blob_folder, out, *EPOCHS)))
    assert "\r" not in text, "a log gets lines, not a progress bar"
    assert [line.split(":")[0] for line in text.splitlines() if line.startswith("epoch ")] == [
        "epoch 1/3", "epoch 2/3", "epoch 3/3"]
    val = [h["val_accuracy"] for h in procs.model_json(out)["history"]]
    assert val[1] > val[0], f"epoch 2 must be a new best, for best.keras to be written: {val}"
    return out


@pytest.mark.slow
@pytest.mark.parametrize("point, saved", [("last-written", 1), ("last-committed", 2), ("best-committed", 2)])
def test_sigkill_while_checkpointing_then_resume(tmp_path, blob_folder, reference, point, saved):
    """Killed at each step of committing epoch 2: resume trains every epoch exactly once."""
    args = procs.fit_args(blob_folder, tmp_path, *EPOCHS)
    killed = procs.run(args, hook=f"{point}:2:kill")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    ckpt = tmp_path / "train"
    assert read_state(ckpt / LAST)["epochs_done"] == saved and not (tmp_path / "model.keras").exists()

    resumed = procs.run([*args, "--resume"])
    text = _clean(resumed)
    assert resumed.returncode == 0, text
    assert f"resuming after epoch {saved} of 3" in text
    record = procs.model_json(tmp_path)
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3]
    assert record["resumed_after_epochs"] == [saved]
    assert read_state(ckpt / BEST)["epochs_done"] == record["best_epoch"]
    assert not list(ckpt.glob(".*partial*")) and not list(tmp_path.glob(".*partial*"))
    same = [np.array_equal(a, b) for a, b in zip(_weights(ckpt / LAST), _weights(reference / "train" / LAST))]
    assert all(same), "a resumed run must be the uninterrupted one"


@pytest.mark.slow
def test_new_run_keeps_the_previous_checkpoints_and_holds_the_lock(tmp_path, blob_folder):
    one = procs.fit_args(blob_folder, tmp_path, "--epochs", "1", *procs.ONE_DEVICE)
    assert procs.run(one).returncode == 0
    ckpt = tmp_path / "train"
    before = _digests(ckpt)

    other = procs.start(procs.fit_args(blob_folder, tmp_path, "--epochs", "2", "--seed", "1", *procs.ONE_DEVICE),
                        hook="epoch-start:1:pause")
    try:
        procs.wait_for_line(other, "test hook: epoch-start:1:pause")
        assert _digests(ckpt) == before, "the new run must not touch the old checkpoints before its first epoch"

        second = procs.run(one)
        text = _clean(second)
        assert second.returncode == 1
        assert f"'{tmp_path}' is in use by pid {other.pid} since " in text

        other.send_signal(signal.SIGINT)   # Ctrl-C
        text, _ = other.communicate(timeout=60)
    finally:
        other.kill()
    assert other.returncode == 130 and "Traceback" not in text
    assert "no epoch of this run finished" in text and "the last finished epoch" not in text
    assert _digests(ckpt) == before

    resumed = procs.run([*one, "--resume"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert procs.model_json(tmp_path)["history"][0]["epoch"] == 1


@contextmanager
def tmpfs(where, options):
    """A tmpfs mounted at ``where`` (root only) for the duration of the block."""
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)])


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_disk_full_keeps_the_last_complete_epoch(tmp_path, blob_folder):
    # One epoch's checkpoints (last.keras + best.keras) take about 6 MB of the 8: the next
    # last.keras cannot be written beside them.
    with tmpfs(tmp_path / "small", "size=8m") as small:
        out = small / "out"
        args = procs.fit_args(blob_folder, out, *EPOCHS)
        full = procs.run(args)
        text = _clean(full)
        assert full.returncode == 1
        error = [line for line in text.splitlines() if line.startswith("Error:")]
        assert error == [f"Error: cannot write '{out / 'train' / LAST}': No space left on device; the last "
                         f"complete epoch (1) is in '{out / 'train' / LAST}': fix this and continue with --resume"]
        assert not list((out / "train").glob(".*partial*"))
        assert read_state(out / "train" / LAST)["epochs_done"] == 1

        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        resumed = procs.run([*args, "--resume"])
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert [h["epoch"] for h in procs.model_json(out)["history"]] == [1, 2, 3]


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only tmpfs")
def test_read_only_out_is_one_line(tmp_path, blob_folder):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        r = procs.run(procs.fit_args(blob_folder, ro / "out", "--epochs", "1", *procs.ONE_DEVICE))
    text = _clean(r)
    assert r.returncode == 1
    assert f"Error: cannot write '{ro / 'out' / '.lock'}': Read-only file system" in text
