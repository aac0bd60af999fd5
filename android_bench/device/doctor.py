"""What a target can run, checked on the target itself: the facts behind ``python -m android_bench doctor``.

    python3 -m android_bench.device.doctor --probe int8.tflite --probe float32.tflite   # prints JSON

Reports Python, numpy, each TFLite runtime (ai_edge_litert, tflite_runtime,
tensorflow.lite) with its version or the reason it cannot be used, the CPU
features that decide whether int8 pays (x86 AVX2, AVX512-VNNI, AVX-VNNI; ARM
dotprod ``asimddp`` and ``i8mm``, from /proc/cpuinfo), the cpufreq governor and
the temperatures. The host (``android_bench.doctor``) turns these facts into a
checklist with fixes; this file only observes.

Each runtime is tried in a child process of its own: an import that fails
(tflite-runtime 2.14 built for numpy 1.x under numpy 2 raises
``_ARRAY_API not found``; a wheel for another CPU can crash outright) cannot
take this process down, and what it printed is kept. Importing is not enough:
tflite-runtime 2.14 imports fine under numpy 2 and fails only when an
Interpreter is built, so each runtime builds one on every ``--probe`` model
(float32 and int8 models the host generates) and invokes it once. With
``--time`` it then times each (``measure.time_invoke``, the benchmark's own
contract, at 1 thread, ``TIMING`` below): the host compares int8 with float32 on
these measurements, not only on what the facts suggest.

Whether XNNPACK handles int8 is observed, not assumed from a version: after
``allocate_tensors()`` (when the runtime applies its default delegate) the
graph has one ``DELEGATE`` node per partition the delegate took, whose inputs
and outputs bound the ops it replaced. Walking back from each delegate node's
outputs to its inputs gives the ops XNNPACK runs; the rest run on TFLite's
builtin kernels. On this repository's machine tflite-runtime 2.14's XNNPACK
took none of the 34 ops of either probe (the default model's graph); ai-edge-litert
2.3's took 30 of the float32 one's and 29 of the int8 one's. The walk uses the interpreter's ``_get_ops_details()``
(present in every runtime since TF 2.5); where it is missing the coverage is
None, never a guess.

Standard library only in this process (numpy and the runtimes only in the
children), Python 3.9 syntax: this file ships to the device.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from typing import Any, Dict, Iterable, List, Optional, Tuple

from android_bench.device import fingerprint

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")   # the runner's order (evaluate.RUNTIMES)
X86_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
ARM_FEATURES = ("asimd", "neon", "asimdhp", "asimddp", "i8mm", "sve", "bf16")
CHILD_TIMEOUT = 180   # s; importing TensorFlow on a Pi takes tens of seconds
# What the numpy 1.x-built extension says under numpy 2 (pybind11's and numpy's own wording).
NUMPY2_ABI = re.compile(r"_ARRAY_API not found|compiled using NumPy 1\.x|numpy\.core\.multiarray failed to import")


# ---- CPU, governor and temperature, from the texts Linux and Android expose ----

def cpu_features(cpuinfo: str, machine: str = "") -> Dict[str, Any]:
    """The int8-relevant features in /proc/cpuinfo: x86 ``flags``, ARM ``Features``.

    Every core must list a feature for it to count (big.LITTLE phones can differ
    per cluster; a thread scheduled on the other cluster would not have it).
    ``isa`` is "x86", "arm" or None (no flags line: a VM or a kernel that hides them).
    """
    per_core: List[set] = []
    isa = None
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep:
            continue
        if key == "flags":
            isa = "x86"
            per_core.append(set(value.split()))
        elif key == "features":
            isa = "arm"
            per_core.append(set(value.split()))
    machine = machine.lower()
    if isa is None and machine:
        isa = "x86" if machine in ("x86_64", "amd64", "i686", "i386") else \
            "arm" if machine.startswith(("arm", "aarch64")) else None
    common = set.intersection(*per_core) if per_core else set()
    names = X86_FEATURES if isa == "x86" else ARM_FEATURES if isa == "arm" else ()
    out: Dict[str, Any] = {"isa": isa, "machine": machine or None, "listed": bool(per_core)}
    for name in names:
        out[name] = (name in common) if per_core else None
    if isa == "x86":
        out["vnni"] = (out["avx512_vnni"] or out["avx_vnni"]) if per_core else None
    elif isa == "arm":
        out["dotprod"] = out["asimddp"]
        if per_core and len({frozenset(c) for c in per_core}) > 1:
            out["differs_between_cores"] = True
    return out


def parse_governors(lines: Iterable[str]) -> Optional[str]:
    """Distinct scaling_governor values ("performance", "ondemand,schedutil"), None if unreadable."""
    govs = sorted({ln.strip().split()[-1] for ln in lines if ln.strip()})
    return ",".join(govs) or None


def parse_thermal(lines: Iterable[str]) -> Optional[Dict[str, float]]:
    """``<zone type> <millidegrees>`` lines -> {type: °C}; a repeated type gets a numbered key."""
    out: Dict[str, float] = {}
    for i, line in enumerate(ln for ln in lines if ln.strip()):
        kind, _, temp = line.strip().rpartition(" ")
        if not temp.lstrip("-").isdigit():
            continue
        kind = kind or f"zone{i}"
        out[kind if kind not in out else f"{kind}#{i}"] = int(temp) / 1000.0
    return out or None


def parse_vcgencmd(lines: Iterable[str]) -> Optional[Dict[str, str]]:
    """``temp=51.1'C`` and ``throttled=0x0`` lines of a Raspberry Pi's vcgencmd."""
    out = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key in ("temp", "throttled", "frequency(48)", "frequency(0)"):
            out["arm_clock" if key.startswith("frequency") else key] = value
    return out or None


# Bits of `vcgencmd get_throttled` (Raspberry Pi firmware documentation).
THROTTLED_BITS = {0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now",
                  3: "soft temperature limit now", 16: "under-voltage has occurred",
                  17: "frequency capping has occurred", 18: "throttling has occurred",
                  19: "soft temperature limit has occurred"}


def throttled_flags(value: Optional[str]) -> List[str]:
    if not value:
        return []
    try:
        bits = int(value, 16)
    except ValueError:
        return []
    return [text for bit, text in sorted(THROTTLED_BITS.items()) if bits >> bit & 1]


def system_facts() -> Dict[str, Any]:
    """CPU, features, governor, temperatures of this machine (through fingerprint's readers)."""
    info = fingerprint._read("/proc/cpuinfo") or ""
    return {"machine": platform.machine(), "cpu": fingerprint.cpu_model(), "cores": os.cpu_count(),
            "features": cpu_features(info, platform.machine()), **fingerprint.governors(),
            "temperature_c": fingerprint.temperatures() or None, "vcgencmd": fingerprint.vcgencmd(),
            "os": fingerprint.os_name(), "device_model": fingerprint._command(["getprop", "ro.product.model"])}


# ---- Python, numpy and the runtimes, each in a child process ----

def delegated_ops(ops: List[Dict[str, Any]]) -> Tuple[List[str], List[str]]:
    """(op names a delegate took, op names left to the builtin kernels), from ``_get_ops_details()``.

    A ``DELEGATE`` node replaces a partition: walking back from its outputs
    through the producing ops, stopping at its inputs, finds the ops inside.
    """
    original = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(t): i for i, op in enumerate(original) for t in op["outputs"]}
    inside = set()
    for node in (op for op in ops if op["op_name"] == "DELEGATE"):
        bounds = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            t = stack.pop()
            i = producer.get(t)
            if t in bounds or i is None or i in inside:
                continue
            inside.add(i)
            stack.extend(int(x) for x in original[i]["inputs"] if int(x) >= 0)
    return ([op["op_name"] for i, op in enumerate(original) if i in inside],
            [op["op_name"] for i, op in enumerate(original) if i not in inside])


# Timing of each probe: warm-up, then at least 30 runs and 0.5 s of invoke() alone (measure.py's contract).
TIMING = {"warmup_runs": 5, "warmup_seconds": 0.2, "runs": 30, "min_seconds": 0.5}


def _probe(interpreter_cls: Any, path: str, timed: bool = False) -> Dict[str, Any]:
    """Build an Interpreter on ``path`` with the default delegates, invoke it once (``timed``: then
    time it, 1 thread), list what XNNPACK took."""
    out: Dict[str, Any] = {"model": os.path.basename(path), "error": None, "median_ms": None}
    try:
        it = interpreter_cls(model_path=path, num_threads=1)
        it.allocate_tensors()
        detail = it.get_input_details()[0]
        import numpy as np
        it.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        it.invoke()
        out["input_dtype"] = np.dtype(detail["dtype"]).name
        if timed:
            from android_bench.device.measure import Protocol, time_invoke
            t = time_invoke(it.invoke, Protocol(**TIMING))
            out.update(median_ms=t["median_ms"], runs=t["runs"], threads=1)
    except BaseException as e:   # SystemError/AttributeError from a numpy ABI mismatch, RuntimeError, ...
        cause = f" (caused by {type(e.__cause__).__name__}: {e.__cause__})" if e.__cause__ else ""
        out["error"] = f"{type(e).__name__}: {e}{cause}"
        return out
    details = getattr(it, "_get_ops_details", None)
    if details is None:
        out["delegated"] = out["not_delegated"] = None
        return out
    ops = details()
    out["ops"] = len([op for op in ops if op["op_name"] != "DELEGATE"])
    out["delegated"], out["not_delegated"] = delegated_ops(ops)
    return out


def runtime_child(name: str, probes: List[str], timed: bool = False) -> Dict[str, Any]:
    """Import numpy and the runtime ``name`` here, probe each model; what ``--child`` prints."""
    import importlib
    out: Dict[str, Any] = {"name": name, "numpy": None, "version": None, "import_error": None,
                           "not_installed": False, "probes": []}
    try:
        import numpy
        out["numpy"] = numpy.__version__
    except BaseException as e:
        out["import_error"] = f"numpy: {type(e).__name__}: {e}"
        return out
    if name == "numpy":
        return out
    try:
        package = importlib.import_module(name)
        cls = package.lite.Interpreter if name == "tensorflow" else \
            importlib.import_module(f"{name}.interpreter").Interpreter
    except BaseException as e:
        out["not_installed"] = isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] == name
        out["import_error"] = f"{type(e).__name__}: {e}"
        return out
    out["version"] = str(getattr(package, "__version__", "unknown"))
    out["probes"] = [_probe(cls, p, timed) for p in probes]
    return out


def run_child(name: str, probes: List[str], timeout: float = CHILD_TIMEOUT, timed: bool = False) -> Dict[str, Any]:
    """``runtime_child`` in a fresh interpreter; a crash or hang is reported as that runtime's error."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
               TF_CPP_MIN_LOG_LEVEL="0")
    argv = [sys.executable, "-m", "android_bench.device.doctor", "--child", name, *(["--time"] if timed else []),
            *[a for p in probes for a in ("--probe", os.path.abspath(p))]]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout, env=env,
                           cwd=root)
    except subprocess.TimeoutExpired:
        return {"name": name, "import_error": f"importing {name} did not finish within {timeout:g} s",
                "not_installed": False, "version": None, "numpy": None, "probes": [], "log": []}
    log = [ln for ln in r.stderr.splitlines() if ln.strip()]
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        how = f"was killed by signal {-r.returncode}" if r.returncode < 0 else f"exited {r.returncode}"
        out = {"name": name, "import_error": f"the Python that imported {name} {how}: "
                                              f"{' | '.join(log[-3:]) or 'no output'}",
               "not_installed": False, "version": None, "numpy": None, "probes": []}
    # The runtimes print "Created TensorFlow Lite XNNPACK delegate for CPU." when they apply it.
    out["xnnpack_logged"] = any("XNNPACK" in ln for ln in log)
    out["numpy_abi_mismatch"] = bool(NUMPY2_ABI.search(r.stderr + json.dumps(out)))
    out["log"] = log[-12:]
    return out


def python_facts(probes: List[str], timed: bool = False) -> Dict[str, Any]:
    numpy_child = run_child("numpy", [])
    return {"python": platform.python_version(), "executable": sys.executable,
            "numpy": numpy_child.get("numpy"), "numpy_error": numpy_child.get("import_error"),
            "runtimes": {name: run_child(name, probes, timed=timed) for name in RUNTIMES}}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m android_bench.device.doctor",
                                description="What this device can run: Python, numpy, TFLite runtimes, CPU.")
    p.add_argument("--probe", action="append", default=[], help="a .tflite to build an interpreter on (repeat)")
    p.add_argument("--time", action="store_true", help="also time each probe (1 thread): the int8/float32 ratio")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    missing = [m for m in args.probe if not os.path.isfile(m)]
    if missing:
        print(f"error: no such probe model: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.child:
        print(json.dumps(runtime_child(args.child, args.probe, args.time)))
        return 0
    print(json.dumps({"system": system_facts(), **python_facts(args.probe, args.time)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
