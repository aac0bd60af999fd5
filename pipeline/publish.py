"""A stage's outputs appear as one set or not at all, and one writer at a time holds OUT.

    with lock(out):                                    # "'build' is in use by pid N since ..."
        with staged(out / "quantize", RECORD) as stage:
            (stage / "int8.tflite").write_bytes(...)   # everything, the record last
        # here OUT/quantize/ holds the new set; after an error, still the old one

A set is some files plus a record (``quantize.json``, ``manifest.json``) that lists
them with their sha256. It is written into a staging folder of this process,
``.<name>.<pid>.partial/`` on the same file system, and then published one of two ways:

* **folder swap** (``OUT/quantize/``, a folder that holds nothing but the set): the
  staging folder and the published one trade places in one ``renameat2(RENAME_EXCHANGE)``.
  A SIGKILL at any moment leaves the old complete set or the new one under the name.
* **files** (``OUT`` itself, which also holds model.keras, train/, quantize/, bench/; or a
  file system without RENAME_EXCHANGE): (1) the old record is removed, (2) each file is
  renamed into place, (3) the new record is renamed in, last. Between (1) and (3) there is
  no record, which every consumer reports as "no complete set: run make export"; the old
  record never describes a new file and the new record exists only once all its files do.
  Files of the old set that the new one no longer has are removed after (3).

The staging folder is removed however the block ends; one left by a killed process is
removed by the next writer, which holds the lock, so no live process owns it. A failed
write (disk full, permission, read-only file system) raises PublishError naming the path.

Tests stop a stage at chosen points with ``MOBILENET_DEPLOY_TEST_AT=POINT:N:ACTION``
(``test_hook``): train uses it per epoch, the publishers per file renamed into place.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import signal
import time
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"
# Tests only: "POINT:N:ACTION" makes the process, when it reaches POINT with count N,
# SIGKILL itself (kill), SIGINT itself as a Ctrl-C does (interrupt), or sleep until killed (pause).
TEST_HOOK = "MOBILENET_DEPLOY_TEST_AT"
_RENAME_EXCHANGE = 2   # linux/fs.h


class OutInUse(RuntimeError):
    pass


class PublishError(RuntimeError):
    pass


def test_hook(point: str, n: int = 0) -> None:
    spec = os.environ.get(TEST_HOOK, "")
    if spec.rsplit(":", 1)[0] != f"{point}:{n}":
        return
    action = spec.rsplit(":", 1)[1]
    print(f"test hook: {spec}", flush=True)
    while action == "pause":
        time.sleep(60)
    os.kill(os.getpid(), signal.SIGINT if action == "interrupt" else signal.SIGKILL)
    time.sleep(1)   # the signal arrives


def os_error(e: OSError, path=None, doing: str = "write") -> str:
    """One line for a failed file operation: "cannot write 'PATH': No space left on device"."""
    where = path or e.filename
    return f"cannot {doing} '{where}': {e.strerror or e}" if where else f"cannot {doing}: {e.strerror or e}"


def message(e: Exception) -> str:
    """The one line a CLI prints for ``e``: an OSError (a full disk, a permission, a read-only
    file system) as the path and the reason, anything else as its own message."""
    return os_error(e, doing="use") if isinstance(e, OSError) else str(e)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@contextmanager
def lock(out: Path, error=PublishError):
    """Hold OUT/.lock (flock: released by the kernel however the process ends) while writing
    OUT. A second process gets OutInUse naming the holder's pid and start time; a lock that
    cannot be created raises ``error`` naming the path."""
    out = Path(out)
    path = out / LOCK
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise error(os_error(e, path)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise OutInUse(f"'{out}' is in use by {holder}: wait for it to finish, or pass another "
                           f"--out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {_now()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def staging_name(name: str) -> str:
    return f".{name}.{os.getpid()}.partial"


def leftovers(parent: Path, name: str) -> list[Path]:
    """Staging folders of ``name`` in ``parent`` left by killed writers."""
    return sorted(p for p in Path(parent).glob(f".{name}.*.partial") if p.is_dir())


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def listed(record: Path) -> set[str]:
    """The files a record lists (``variants[].file``, plus ``eval_pack.file`` and ``labels_file``
    of a manifest); empty when it cannot be read."""
    try:
        doc = json.loads(Path(record).read_text())
        names = {v["file"] for v in doc.get("variants", [])}
        names |= {n for n in (doc.get("labels_file"), (doc.get("eval_pack") or {}).get("file")) if n}
        return {n for n in names if isinstance(n, str) and "/" not in n}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()


def _own_folder(out: Path, record: str) -> bool:
    """True when ``out`` holds nothing but a set (its record, the files it lists, leftovers)."""
    if not out.exists():
        return True
    mine = listed(out / record) | {record}
    return out.is_dir() and all(p.name in mine or p.name.endswith(".partial") for p in out.iterdir())


def publish_files(stage: Path, out: Path, record: str, point: str) -> None:
    """Steps (1) to (3) of the module docstring: record out, files in, record in."""
    old = listed(out / record)
    names = sorted(p.name for p in stage.iterdir() if p.name != record)
    for name in names + [record]:
        fsync(stage / name)
    (out / record).unlink(missing_ok=True)
    fsync(out)
    for i, name in enumerate(names, 1):
        os.replace(stage / name, out / name)
        test_hook(f"{point}-file", i)
    os.replace(stage / record, out / record)
    fsync(out)
    test_hook(f"{point}-published")
    for name in old - set(names) - {record}:
        (out / name).unlink(missing_ok=True)


@contextmanager
def staged(out: Path, record: str, folder: bool = False, point: str | None = None):
    """Yield an empty staging folder; when the block succeeds, publish what it holds as the set
    of ``out`` (``folder``: swap the whole folder when it is the set's own). The block must
    write ``record`` into it."""
    out = Path(out)
    point = point or out.name
    parent = out.parent if folder else out
    name = out.name if folder else point
    stage = parent / staging_name(name)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for old in leftovers(parent, name):
            shutil.rmtree(old, ignore_errors=True)
        stage.mkdir()
    except OSError as e:
        raise PublishError(os_error(e, stage)) from None
    try:
        yield stage
        if not (stage / record).is_file():
            raise PublishError(f"internal: '{stage / record}' was not written")
        test_hook(f"{point}-staged")
        if folder and _own_folder(out, record):
            if not out.exists():
                os.rename(stage, out)
            elif not _exchange(stage, out):
                publish_files(stage, out, record, point)
                return
            fsync(parent)
            test_hook(f"{point}-published")
        else:
            out.mkdir(parents=True, exist_ok=True)
            publish_files(stage, out, record, point)
    except OSError as e:   # a write into the staging folder names no file: name the set's folder
        raise PublishError(os_error(e, e.filename or out)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def read_record(path: Path, what: str, rebuild: str) -> dict:
    """A record as a dict, or PublishError saying what is wrong with it and what rebuilds it.
    No record beside a staging folder: a publish was killed half-way."""
    path = Path(path)
    if not path.is_file():
        half = [p.name for p in path.parent.glob(".*.partial") if p.is_dir()] if path.parent.is_dir() else []
        why = (f"a run was interrupted while publishing ('{path.parent / half[0]}' is left), so there is no "
               f"complete set" if half else "it was never written or a run was interrupted")
        raise PublishError(f"'{path}' does not exist: {why}; {rebuild}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PublishError(f"cannot read '{path}': {getattr(e, 'strerror', None) or e}; {rebuild}") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        empty = "it is empty" if not text.strip() else f"it is not JSON ({e.msg} at line {e.lineno})"
        raise PublishError(f"'{path}' is not a {what}: {empty}; {rebuild}") from None
    if not isinstance(doc, dict):
        raise PublishError(f"'{path}' is not a {what}: it holds a JSON {type(doc).__name__}, not an object; "
                           f"{rebuild}")
    return doc
