"""Decode many images on every core, each worker writing its rows straight into the output file.

    errors = decode_into(Path("images.npy"), offset, (96, 96, 3), "bilinear",
                         [(0, "cat/1.jpg"), (1, "cat/2.jpg")], workers=2, progress=Progress())
    # {row: None, or why that image could not be read}

Only (row, file) pairs go to the workers and (row, error) pairs come back: no pixel
array is pickled. The workers are plain ``python -c`` subprocesses talking JSON
lines over pipes, not a multiprocessing pool: spawn and forkserver re-import the
caller's main script (which breaks any script without a ``__main__`` guard), and fork
copies a process that may already run TensorFlow's threads. With one worker the
same function runs in this process, so parallel and serial decoding write the same
bytes. A worker ignores Ctrl-C (the parent handles it once) and exits when the
parent dies, at the end of its current chunk.
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from imagedata.image import BadImage, decode
from imagedata.rows import CacheError, write_all

PAUSE_ENV = "IMAGEDATA_TEST_PAUSE_AFTER"   # tests only: "N[:FILE]", pause after N images decoded


class Progress:
    """A tqdm bar when stderr is a terminal, nothing otherwise (a log gets a line instead)."""

    def __init__(self, bar=None, stream=None):
        stream = stream or sys.stderr
        self.bar, self.tty = bar, bar is not None and hasattr(stream, "isatty") and stream.isatty()

    @contextmanager
    def __call__(self, total: int, desc: str):
        if not self.tty:
            yield _NoBar()
            return
        with self.bar(total=total, desc=desc, unit="img", leave=False) as b:
            yield b


class _NoBar:
    def update(self, n):
        pass


def _decode_rows(task: dict) -> list:
    """Decode each (row, file) of the task and write it at its row; returns [(row, error or None)]."""
    shape = tuple(task["shape"])
    row_bytes = int(np.prod(shape))
    fd = os.open(task["path"], os.O_WRONLY)
    try:
        out = []
        for row, file in task["items"]:
            try:
                a = decode(Path(file), shape[0], shape[2], task["interpolation"])
            except BadImage as e:
                out.append((row, e.reason))
                continue
            write_all(fd, np.ascontiguousarray(a), task["offset"] + row * row_bytes)
            out.append((row, None))
        return out
    finally:
        os.close(fd)


def serve() -> None:
    """A worker: one JSON task per line on stdin, its result as one JSON line on stdout."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    results, sys.stdout = sys.stdout, sys.stderr    # a stray print must not break the protocol
    for line in sys.stdin:
        try:
            out = _decode_rows(json.loads(line))
        except OSError as e:   # writing the row: no space, an I/O error
            out = {"oserror": e.strerror or str(e)}
        results.write(json.dumps(out) + "\n")
        results.flush()


def _stopped(proc) -> CacheError:
    _reap(proc, 10)
    return CacheError(f"a decoding process stopped with exit code {proc.returncode} (killed, or out of "
                      f"memory?); run again to decode what is missing")


def _send(proc, task) -> None:
    try:
        proc.stdin.write(json.dumps(task) + "\n")
        proc.stdin.flush()
    except BrokenPipeError:
        raise _stopped(proc) from None


def _reap(proc, timeout: float) -> float:
    """Wait for a worker (killing it after timeout); its CPU seconds, user + system."""
    deadline, flags = time.monotonic() + timeout, os.WNOHANG
    while True:
        pid, status, usage = os.wait4(proc.pid, flags)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            flags = 0   # now block until it is gone
        else:
            time.sleep(0.005)


def _pool(tasks: list, workers: int, account: Callable) -> list[float]:
    """Run tasks on ``workers`` subprocesses, one task in flight each (so a result line is
    never left in a pipe's read buffer behind select), calling account(result) for each.
    Returns each worker's CPU seconds."""
    here = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", "from imagedata.decoding import serve; serve()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
             for _ in range(workers)]
    todo = iter(tasks)
    try:
        with selectors.DefaultSelector() as sel:
            for proc in procs:
                task = next(todo, None)
                if task is not None:
                    _send(proc, task)
                    sel.register(proc.stdout, selectors.EVENT_READ, proc)
            while sel.get_map():
                for key, _ in sel.select():
                    proc = key.data
                    line = proc.stdout.readline()
                    if not line:
                        raise _stopped(proc)
                    result = json.loads(line)
                    if isinstance(result, dict):
                        raise OSError(result["oserror"])
                    account([tuple(r) for r in result])
                    task = next(todo, None)
                    if task is None:
                        sel.unregister(proc.stdout)
                    else:
                        _send(proc, task)
    finally:
        cpu = []
        for proc in procs:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
            cpu.append(_reap(proc, 10) if proc.returncode is None else 0.0)
    return cpu


def _pause_hook() -> Callable[[int], None]:
    """A test's chosen point to kill this process at: after N images, wait (60 s at most) for FILE."""
    pause = os.environ.get(PAUSE_ENV)
    if not pause:
        return lambda seen: None
    after, resume = (pause.split(":", 1) + [""])[:2]
    state = {"done": False}

    def hook(seen: int) -> None:
        if state["done"] or seen < int(after):
            return
        state["done"] = True
        print(f"{PAUSE_ENV}: paused after {seen} images, pid {os.getpid()}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (resume and os.path.exists(resume)):
            time.sleep(0.05)
    return hook


def decode_into(path: Path, offset: int, shape: tuple, interpolation: str, todo: list, workers: int,
                progress: Progress) -> tuple[dict, list]:
    """Decode each (row, file) of ``todo`` into row ``row`` of the (rows, *shape) uint8 array that
    starts at byte ``offset`` of ``path``. Returns ({row: None or the reason it is unreadable},
    the CPU seconds of each decoding process). Raises CacheError or OSError when the file
    cannot be written. The CPU seconds tell a busy machine from a slow decode: on idle cores
    the wall time is about the largest of them."""
    chunk = max(4, min(64, len(todo) // (workers * 8) or 1))   # small enough to balance, big enough to batch
    tasks = [{"path": str(path), "offset": offset, "shape": list(shape), "interpolation": interpolation,
              "items": todo[k:k + chunk]} for k in range(0, len(todo), chunk)]
    results, pause = {}, _pause_hook()
    with progress(total=len(todo), desc="decoding images") as bar:
        def account(chunk_result):
            results.update(chunk_result)
            bar.update(len(chunk_result))
            pause(len(results))

        if workers <= 1:
            t0 = time.process_time()
            for task in tasks:
                account(_decode_rows(task))
            cpu = [time.process_time() - t0]
        else:
            cpu = _pool(tasks, workers, account)
    return results, cpu
