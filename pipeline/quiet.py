"""Quiet, true output: library banners kept out of stderr, progress bars only on a terminal.

    from pipeline import quiet
    quiet.install(verbose)                       # in a CLI, before TensorFlow is imported
    with quiet.progress(total=n, desc="converting", unit="variant") as bar:
        bar.update(1)                            # a bar on a terminal; in a log, one line at the start and the end

What ``install`` filters out of stderr (``-v`` on the command line keeps everything):

* absl's ``WARNING: All log messages before absl::InitializeLog() is called ...`` and the
  INFO and WARNING lines of TensorFlow's C++ logging (``I0000 00:00:... port.cc:153] oneDNN
  custom operations are on ...``); ERROR and FATAL lines pass;
* the converter's ``fully_quantize: 0, inference_type: 6, ...`` line of every calibrated variant;
* ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``, once per interpreter.

TensorFlow and the interpreters write these from C++ straight to file descriptor 2, past
Python's ``sys.stderr``, so the filter sits on the descriptor: fd 2 becomes a pipe read by a
thread that drops those lines and passes everything else on, and Python's ``sys.stderr``
writes to the original descriptor directly (so it still knows whether it is a terminal). A
process whose ``sys.stderr`` has no descriptor (a test's captured output) is left alone.
"""
from __future__ import annotations

import atexit
import os
import re
import select
import sys
import threading
import time

BANNER = re.compile(
    r"^(?:WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|fully_quantize: \d+, inference_type: \d+, "
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|INFO: Initialized TensorFlow Lite runtime\.)")
HOLD = 0.05   # s
_state: dict = {}


def is_banner(line: str) -> bool:
    return bool(BANNER.match(line))


def _pump(read_fd: int, write_fd: int) -> None:
    """Copy ``read_fd`` to ``write_fd`` without the banner lines. C++ streams write a line in
    pieces (``fully_quantize: `` first), so a partial line waits up to ``HOLD`` seconds for its
    end; then it goes on as it is (a terminal's progress bar redraws with \\r, never ending its line)."""
    pending, since = b"", 0.0
    while True:
        wait = max(0.0, since + HOLD - time.monotonic()) if pending else None
        if pending and (wait == 0.0 or not select.select([read_fd], [], [], wait)[0]):
            os.write(write_fd, pending)   # a partial line that stayed partial: not a banner in pieces
            pending = b""
            continue
        try:
            chunk = os.read(read_fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        if not pending:
            since = time.monotonic()
        *lines, pending = (pending + chunk).split(b"\n")
        if lines:
            since = time.monotonic()
        kept = b"".join(ln + b"\n" for ln in lines if not is_banner(ln.decode("utf-8", "replace")))
        if kept:
            os.write(write_fd, kept)
    if pending and not is_banner(pending.decode("utf-8", "replace")):
        os.write(write_fd, pending)


def install(verbose: bool = False) -> None:
    """Filter the banners out of this process's stderr (and its children's), unless ``verbose``.

    Idempotent. Call it before TensorFlow is imported: TF_CPP_MIN_LOG_LEVEL=2 is set then too,
    which silences the rest of TensorFlow's C++ INFO and WARNING logging.
    """
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if _state:
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):   # captured by a test runner: nothing to filter
        return
    if fd != 2:
        return
    sys.stderr.flush()
    real = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(target=_pump, args=(read_fd, real), name="quiet-stderr", daemon=True)
    thread.start()
    _state.update(real=real, thread=thread, tty=os.isatty(real))
    sys.stderr = open(real, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8", errors="backslashreplace",
                      closefd=False)
    atexit.register(_restore)


def _restore() -> None:
    """Give fd 2 back and let the filter pass on what is left (children may still hold the pipe)."""
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(_state["real"], 2)
    _state["thread"].join(timeout=2)


def on_terminal() -> bool:
    """Whether stderr, as the user sees it, is a terminal (a log file or a pipe is not)."""
    if "tty" in _state:
        return _state["tty"]
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class LogProgress:
    """tqdm's interface as a log wants it: one line when a stage starts, one when it ends."""

    def __init__(self, iterable=None, total=None, desc: str = "", unit: str = "it", **_):
        self.iterable, self.total, self.desc, self.unit, self.n = iterable, total, desc or "working", unit, 0
        self.started = time.perf_counter()
        self._closed = False
        print(f"{self.desc} ...", file=sys.stderr, flush=True)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, *_, **__) -> None:   # a bar's decoration: nothing to log
        pass

    set_postfix = set_description = refresh = set_postfix_str

    def write(self, line: str, file=None, **_) -> None:
        print(line, file=file or sys.stderr, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        noun = {"img": "image", "it": "step"}.get(self.unit, self.unit)
        print(f"{self.desc}: {count(self.n, noun)} in {time.perf_counter() - self.started:.1f} s",
              file=sys.stderr, flush=True)


def count(n: int, noun: str) -> str:
    """"1 model", "2 models": the noun's plural with an s."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def progress(*args, **kwargs):
    """tqdm on a terminal, LogProgress elsewhere: the same calls either way (file: stderr)."""
    if on_terminal():
        from tqdm import tqdm
        kwargs.setdefault("file", sys.stderr)
        return tqdm(*args, **kwargs)
    return LogProgress(*args, **kwargs)
