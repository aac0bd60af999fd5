"""What machine a measurement was taken on, and how much memory it took.

    python3 -m android_bench.device.fingerprint      # prints the JSON

Every result records ``fingerprint()``: a latency means little without the
CPU, the core count, the runtime that ran it and whether the CPU was
throttling. Everything is read from the standard library and from files that
Linux, Raspberry Pi OS and Android expose; a value that cannot be read is
None, never a guess. Python 3.9 compatible: this file ships to the device.
"""
from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from typing import Any, Dict, List, Optional


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\0", "").strip()
    except OSError:
        return None


def _command(argv: List[str], timeout: float = 5) -> Optional[str]:
    """stdout of a diagnostic command (vcgencmd, getprop), None when absent or failing."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def cpu_model() -> Optional[str]:
    """x86's "model name"; on ARM, where /proc/cpuinfo often has none, the board's model."""
    info = _read("/proc/cpuinfo") or ""
    fields: Dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "hardware", "cpu model", "processor"):
        value = fields.get(key)
        if value and not value.isdigit():
            return value
    board = _read("/proc/device-tree/model")   # "Raspberry Pi 4 Model B Rev 1.4"
    if board:
        return board
    if fields.get("cpu part"):
        return f"{fields.get('cpu implementer', '?')}:{fields['cpu part']} ({platform.machine()})"
    return platform.processor() or None


def os_name() -> str:
    release = _read("/etc/os-release") or ""
    for line in release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    android = _command(["getprop", "ro.build.version.release"])
    if android:
        return f"Android {android}"
    return platform.platform()


def temperatures() -> Dict[str, float]:
    """°C of each thermal zone, by zone type ("cpu-thermal", "x86_pkg_temp"...)."""
    out: Dict[str, float] = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        temp = _read(os.path.join(zone, "temp"))
        if temp is None or not temp.lstrip("-").isdigit():
            continue
        kind = _read(os.path.join(zone, "type")) or os.path.basename(zone)
        out[kind if kind not in out else os.path.basename(zone)] = int(temp) / 1000.0   # millidegrees
    return out


def governors() -> Dict[str, Any]:
    """The cpufreq governor of each distinct policy and the current frequencies, MHz."""
    govs = sorted({g for g in (_read(p) for p in glob.glob(
        "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")) if g})
    freqs = [_read(p) for p in sorted(glob.glob("/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq"))]
    mhz = sorted({int(f) // 1000 for f in freqs if f and f.isdigit()})   # kHz in sysfs
    return {"governor": ",".join(govs) or None, "cur_freq_mhz": mhz or None}


def vcgencmd() -> Optional[Dict[str, str]]:
    """A Raspberry Pi's firmware view: temperature, ARM clock, throttling flags (0x0 = never)."""
    if shutil.which("vcgencmd") is None:
        return None
    out = {}
    for key, argv in (("temp", ["vcgencmd", "measure_temp"]), ("arm_clock", ["vcgencmd", "measure_clock", "arm"]),
                      ("throttled", ["vcgencmd", "get_throttled"])):
        value = _command(argv)
        if value is not None:
            out[key] = value.split("=", 1)[-1]
    return out or None


def memory_total_mb() -> Optional[int]:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return None


def rss_kb() -> Dict[str, Optional[int]]:
    """This process's resident memory now (VmRSS) and at its peak (VmHWM), KiB.

    /proc/self/status where there is one (Linux, Android); otherwise the peak
    from getrusage (KiB on Linux, bytes on macOS) and no current value.
    """
    out: Dict[str, Optional[int]] = {"rss_kb": None, "peak_rss_kb": None}
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            out["rss_kb"] = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            out["peak_rss_kb"] = int(line.split()[1])
    if out["peak_rss_kb"] is None:
        try:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            out["peak_rss_kb"] = peak // 1024 if sys.platform == "darwin" else peak
        except (ImportError, OSError):
            pass
    return out


def fingerprint(runtime: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The machine, OS, Python, numpy and runtime; governor and temperatures where readable."""
    try:
        import numpy
        numpy_version: Optional[str] = numpy.__version__
    except ImportError:
        numpy_version = None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {
        "hostname": socket.gethostname(),
        "arch": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,             # after taskset / cgroup affinity
        "memory_mb": memory_total_mb(),
        "os": os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": numpy_version,
        "runtime": (runtime or {}).get("name"),
        "runtime_version": (runtime or {}).get("version"),
        **governors(),
        "temperature_c": temperatures() or None,
        "vcgencmd": vcgencmd(),
        "device_model": _command(["getprop", "ro.product.model"]),   # Android only
    }


if __name__ == "__main__":
    print(json.dumps(fingerprint(), indent=2))
