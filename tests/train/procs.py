"""`python -m train fit` as real processes: alone, stopped at a chosen point, or as a cluster on 127.0.0.1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, free_port
from train.checkpoint import TEST_HOOK

# A tiny MobileNet (V1 0.25 at 32 px, 1 channel) on the 4-class blob folder: a second an epoch,
# above 90% validation top-1 from epoch 2 on.
TINY = ["--arch", "v1", "--alpha", "0.25", "--resolution", "32", "--channels", "1", "--bn-momentum", "0.5",
        "--no-augment"]
ONE_DEVICE = ["--batch-size", "32", "--learning-rate", "6e-3"]
PER_REPLICA_OF_TWO = ["--batch-size", "16", "--learning-rate", "3e-3"]   # x2 replicas: the same


def fit_args(data: Path, out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "train", "fit", "--data", str(data), "--out", str(out), *TINY, *extra]


def env(hook: str | None = None, tf_config: dict | None = None) -> dict:
    """The environment a user has: no test hook, no cluster, TensorFlow's log level unset."""
    e = {k: v for k, v in os.environ.items() if k not in (TEST_HOOK, "TF_CONFIG", "TF_CPP_MIN_LOG_LEVEL")}
    if hook:
        e[TEST_HOOK] = hook
    if tf_config:
        e["TF_CONFIG"] = json.dumps(tf_config)
    return e


def run(args, hook=None, tf_config=None, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env(hook, tf_config), capture_output=True, text=True,
                          timeout=timeout)


def start(args, hook=None, tf_config=None) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env(hook, tf_config), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 600) -> list[str]:
    """Lines of ``proc`` up to the first that contains ``text``."""
    lines, t0 = [], time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no line with {text!r} from {proc.args}: {''.join(lines)[-2000:]}")


def cluster(n: int) -> list[dict]:
    """TF_CONFIG of each of ``n`` workers on 127.0.0.1; worker 0 is the chief."""
    workers = [f"127.0.0.1:{free_port()}" for _ in range(n)]
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}} for i in range(n)]


def run_cluster(args_of_worker, tf_configs, hooks=None, timeout=900) -> list[tuple[int, str]]:
    """Start every worker, wait for all: [(exit code, output)] in worker order."""
    hooks = hooks or [None] * len(tf_configs)
    procs = [start(args_of_worker(i), hook=h, tf_config=c) for i, (c, h) in enumerate(zip(tf_configs, hooks))]
    out = []
    for p in procs:
        try:
            text, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        out.append((p.returncode, text))
    return out


def model_json(out: Path) -> dict:
    return json.loads((out / "model.json").read_text())
