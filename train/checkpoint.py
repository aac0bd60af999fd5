"""Checkpoints in OUT/train/ that a kill, a full disk or a second run cannot leave half-done.

    with lock(out):                      # "OUT is in use by pid N since ..." for a second writer
        commit(model, out / "train", state, new_best=True)
        state, last = resumable(out / "train")

Files:
* ``last.keras``: model and optimizer after the last finished epoch, with the run's
  state (history, best epoch, sessions) inside as the zip member ``train_state.json``.
  One file, one rename: the checkpoint and the state that describes it cannot
  disagree, whatever moment a SIGKILL picks;
* ``best.keras``: a copy of the ``last.keras`` of the best epoch by validation top-1;
* ``state.json``: the same state, for people and the sweep. Resume never reads it.

Committing epoch e: (1) save to ``.last.<pid>.partial.keras`` and add the state; (2)
rename it onto ``last.keras``, the commit point; (3) on a new best, copy it to
``.best.<pid>.partial.keras`` and rename onto ``best.keras``; (4) ``state.json``. Killed
before (2), epoch e-1 is the last complete one; after (2), ``repair`` redoes (3) and
(4) from ``last.keras``. A new run overwrites the previous run's files only at its
own first commit, so until then they stay usable. A failed write (disk full,
permission) removes its temporary file and names the path.
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

from pipeline import publish
from pipeline.publish import TEST_HOOK, OutInUse, fsync, test_hook  # noqa: F401 (train's names for them)

LAST, BEST, STATE = "last.keras", "best.keras", "state.json"
MEMBER = "train_state.json"            # the state inside a .keras checkpoint
# Tests only: "POINT:EPOCH:ACTION" (pipeline.publish.test_hook) at one of these points of EPOCH.
POINTS = ("epoch-start", "last-written", "last-committed", "best-committed", "state-written")


class CheckpointError(RuntimeError):
    pass


def lock(out: Path):
    """OUT/.lock for the run (pipeline.publish.lock): OutInUse for a second writer."""
    return publish.lock(out, error=CheckpointError)


def _partial(ckpt: Path, name: str) -> Path:
    stem = name.split(".")[0]
    return ckpt / f".{stem}.{os.getpid()}.partial.keras"


def remove_partials(ckpt: Path) -> None:
    """Temporary files left by killed runs (we hold the lock, so no live process owns them)."""
    if ckpt.is_dir():
        for p in ckpt.glob(".*.partial*"):
            p.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path, epoch: int, point: str) -> None:
    fsync(tmp)
    os.replace(tmp, path)
    fsync(path.parent)
    test_hook(point, epoch)


def commit(model, ckpt: Path, state: dict, new_best: bool) -> None:
    """Publish the epoch ``state["epochs_done"]``: last.keras (+ best.keras) + state.json."""
    epoch = state["epochs_done"]
    ckpt.mkdir(parents=True, exist_ok=True)
    last = ckpt / LAST
    tmp = _partial(ckpt, LAST)
    try:
        try:
            model.save(tmp)
            with zipfile.ZipFile(tmp, "a") as z:
                z.writestr(MEMBER, json.dumps(state, indent=1))
            test_hook("last-written", epoch)
            _publish(tmp, last, epoch, "last-committed")
        except OSError as e:
            raise CheckpointError(_failed(last, e, state)) from None
        repair(ckpt, state, new_best)
    finally:
        tmp.unlink(missing_ok=True)


def repair(ckpt: Path, state: dict, new_best: bool = False) -> None:
    """Steps (3) and (4) of a commit, from last.keras: after a commit, or on resume after a
    kill between (2) and (4). best.keras is redone when it is not the best epoch's."""
    last, best = ckpt / LAST, ckpt / BEST
    epoch = state["epochs_done"]
    stale = read_state(best) if best.exists() else None
    is_current = stale is not None and (stale.get("run_id"), stale.get("epochs_done")) == (
        state.get("run_id"), state["best_epoch"])
    if new_best or (state["best_epoch"] == epoch and not is_current):
        tmp = _partial(ckpt, BEST)
        try:
            shutil.copyfile(last, tmp)
            _publish(tmp, best, epoch, "best-committed")
        except OSError as e:
            raise CheckpointError(_failed(best, e, state)) from None
        finally:
            tmp.unlink(missing_ok=True)
    tmp = ckpt / f".{STATE}.{os.getpid()}.partial"
    try:
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, ckpt / STATE)
    except OSError as e:
        raise CheckpointError(_failed(ckpt / STATE, e, state)) from None
    finally:
        tmp.unlink(missing_ok=True)
    test_hook("state-written", epoch)


def _failed(path: Path, e: OSError, state: dict) -> str:
    done = state["epochs_done"] - (0 if path.name != LAST else 1)
    where = (f"the last complete epoch ({done}) is in '{path.parent / LAST}': fix this and continue "
             f"with --resume") if done > 0 else "no epoch of this run was saved"
    return f"cannot write '{path}': {e.strerror or e}; {where}"


def read_state(path: Path) -> dict | None:
    """The state inside a checkpoint, or None if it has none or cannot be read."""
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read(MEMBER))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def restore(model, path: Path) -> None:
    """Copy the weights and optimizer state of checkpoint ``path`` into ``model`` (built and
    compiled the same way). The checkpoint is loaded as a model of its own, outside any
    strategy: under MultiWorkerMirroredStrategy creating variables is a collective op,
    which only the chief doing it would leave the workers' ops out of step."""
    import keras
    source = keras.models.load_model(path)
    src = source.weights + source.optimizer.variables
    dst = model.weights + model.optimizer.variables
    if [tuple(v.shape) for v in src] != [tuple(v.shape) for v in dst]:
        raise CheckpointError(f"'{path}' does not hold this model's variables (another architecture or "
                              f"optimizer): run without --resume to start fresh")
    for d, s in zip(dst, src):
        d.assign(s.numpy())


def resumable(ckpt: Path) -> tuple[dict, Path] | None:
    """(state, last.keras) of the last complete epoch in ``ckpt``, or None."""
    last = ckpt / LAST
    state = read_state(last) if last.is_file() else None
    return (state, last) if state else None
