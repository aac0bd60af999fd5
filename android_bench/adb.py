"""An Android phone over adb as a benchmark target: find it, describe it, push to it, run there.

    python -m android_bench run --target adb --benchmark-binary android_aarch64_benchmark_model build/manifest.json
    python -m android_bench run --target adb:R58M123ABC ...      # one of several attached devices

``adb devices`` finds the phone (an error that says what to do when there is
none, several and no serial, or it is unauthorized or offline); ``getprop``
and ``/sys`` give its fingerprint (ABI, model, SoC, Android version, cores,
their maximum clocks, governor, temperatures). Files go over with ``adb push``
into a folder made by ``mktemp -d /data/local/tmp/android_bench.XXXXXX`` (the
one place an adb shell may write and execute), commands run with ``adb -s
SERIAL shell``, and the folder is removed at the end. The adb executable is
``$ANDROID_BENCH_ADB``, else ``adb`` on PATH.

adb returns the device command's exit status (the shell protocol of adb
1.0.36+ and Android 7+); older pairs always return 0, and the benchmark then
relies on the parsed output alone, which is checked for completeness.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from android_bench.targets import Session, Target, TargetError

DEVICE_TMP = "/data/local/tmp"
ADB_ENV = "ANDROID_BENCH_ADB"
INSTALL_ADB = ("install Android's platform tools (apt-get install adb, or "
               "https://developer.android.com/tools/releases/platform-tools) or set ANDROID_BENCH_ADB=/path/to/adb")


def adb_executable() -> str:
    exe = os.environ.get(ADB_ENV) or shutil.which("adb")
    if not exe:
        raise TargetError(f"adb was not found on PATH: {INSTALL_ADB}")
    return exe


def _run(argv: list[str], timeout: float | None = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise TargetError(f"{argv[0]} cannot be run: {INSTALL_ADB}") from None
    except subprocess.TimeoutExpired:
        raise TargetError(f"`{' '.join(argv[:4])} ...` did not finish within {timeout:g} s: is the device "
                          f"still connected? (adb devices)") from None


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def list_devices(adb: str) -> list[tuple[str, str]]:
    """[(serial, state)] from ``adb devices``: state is device, unauthorized, offline, ..."""
    r = _run([adb, "devices"])
    if r.returncode != 0:
        raise TargetError(f"`adb devices` failed: {_text(r.stderr).strip() or r.returncode}")
    out = []
    for line in _text(r.stdout).splitlines():
        if not line.strip() or line.startswith(("List of devices", "*")):
            continue   # "* daemon started successfully" and the like
        serial, _, state = line.partition("\t")
        out.append((serial.strip(), state.split()[0] if state.split() else "unknown"))
    return out


def choose_device(devices: list[tuple[str, str]], serial: str | None) -> str:
    """The serial to use, or a TargetError saying what to do."""
    if not devices:
        raise TargetError("no Android device: `adb devices` lists none. Connect the phone by USB, turn on USB "
                          "debugging (Settings > System > Developer options) and accept the prompt on the phone, "
                          "then check with `adb devices`")
    if serial is None:
        if len(devices) > 1:
            listed = ", ".join(f"{s} ({st})" for s, st in devices)
            raise TargetError(f"{len(devices)} devices are attached ({listed}): choose one with --target adb:SERIAL")
        serial = devices[0][0]
    states = dict(devices)
    if serial not in states:
        raise TargetError(f"device {serial!r} is not attached; `adb devices` lists: "
                          f"{', '.join(s for s, _ in devices)}")
    state = states[serial]
    if state == "unauthorized":
        raise TargetError(f"device {serial} is unauthorized: unlock the phone and accept the 'Allow USB "
                          f"debugging?' prompt (tick 'Always allow'), then retry")
    if state == "offline":
        raise TargetError(f"device {serial} is offline: unplug and replug the cable (or `adb reconnect`), "
                          f"wait for it to show as 'device' in `adb devices`, then retry")
    if state != "device":
        raise TargetError(f"device {serial} is in state {state!r}, not 'device': boot it into Android with USB "
                          f"debugging on")
    return serial


def parse_getprop(text: str) -> dict[str, str]:
    """``[ro.product.model]: [Pixel 7]`` lines -> {"ro.product.model": "Pixel 7"}."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, flags=re.M))


def cpu_mask(cpus: list[int]) -> str:
    """taskset's hexadecimal mask of CPU numbers: [4, 5, 6, 7] -> "f0"."""
    return format(sum(1 << c for c in cpus), "x")


@dataclass(frozen=True)
class AdbTarget(Target):
    serial: str | None = None      # None: the only attached device
    adb: str = "adb"

    @classmethod
    def from_spec(cls, spec: str, python: str | None = None) -> "AdbTarget":
        m = re.fullmatch(r"adb(?::([^\s:]+(?::\d+)?))?", spec)   # adb:192.168.1.7:5555 for adb over Wi-Fi
        if not m:
            raise TargetError(f"an adb target is 'adb' or 'adb:SERIAL' (a serial from `adb devices`), got {spec!r}")
        return cls(spec=spec, python=python or "python3", serial=m.group(1), adb=adb_executable())

    def resolved(self) -> "AdbTarget":
        """This target with the serial of the attached device filled in (checked against adb devices)."""
        serial = choose_device(list_devices(self.adb), self.serial)
        return AdbTarget(spec=f"adb:{serial}", python=self.python, serial=serial, adb=self.adb)

    @property
    def where(self) -> str:
        return f"Android device {self.serial}" if self.serial else "the Android device"

    def base(self) -> list[str]:
        return [self.adb, *(["-s", self.serial] if self.serial else [])]

    def command(self, shell_command: str) -> list[str]:
        return [*self.base(), "shell", shell_command]

    def check_reachable(self) -> None:
        r = _run([*self.base(), "get-state"], timeout=30)
        if r.returncode != 0 or _text(r.stdout).strip() != "device":
            said = (_text(r.stderr).strip().splitlines() or [_text(r.stdout).strip()])[-1]
            raise TargetError(f"{self.where} is not ready ({said}): check `adb devices`")

    def push(self, local: Path, remote: str) -> None:
        r = _run([*self.base(), "push", str(local), remote], timeout=None)
        if r.returncode != 0:
            said = (_text(r.stderr) + _text(r.stdout)).strip().splitlines()
            raise TargetError(f"adb push {local} {remote} failed: {said[-1] if said else r.returncode}")

    def getprop(self) -> dict[str, str]:
        r = self.shell("getprop", timeout=60)
        if r.returncode != 0:
            raise TargetError(f"getprop failed on {self.where}: {_text(r.stderr).strip() or r.returncode}")
        return parse_getprop(_text(r.stdout))

    def cpu_info(self) -> dict[str, Any]:
        """Max clock (kHz) and governor of each CPU, and the thermal zones, read from /sys."""
        script = ("for c in /sys/devices/system/cpu/cpu[0-9]*; do "
                  "echo \"cpu ${c##*cpu} $(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null) "
                  "$(cat $c/cpufreq/scaling_governor 2>/dev/null)\"; done; "
                  "for z in /sys/class/thermal/thermal_zone*; do "
                  "echo \"zone $(cat $z/type 2>/dev/null) $(cat $z/temp 2>/dev/null)\"; done")
        r = self.shell(script, timeout=60)
        cpus, governors, temps = {}, set(), {}
        for line in _text(r.stdout).splitlines():
            parts = line.split()
            if parts[:1] == ["cpu"] and len(parts) >= 2 and parts[1].isdigit():
                cpus[int(parts[1])] = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
                if len(parts) > 3:
                    governors.add(parts[3])
            elif parts[:1] == ["zone"] and len(parts) == 3 and parts[2].lstrip("-").isdigit():
                temps[parts[1] if parts[1] not in temps else f"{parts[1]}.{len(temps)}"] = int(parts[2]) / 1000.0
        return {"max_freq_khz": cpus, "governor": ",".join(sorted(governors)) or None, "temperature_c": temps}

    def big_cores(self, info: dict[str, Any] | None = None) -> list[int]:
        """The CPUs with the highest maximum clock: the big (or prime) cluster of a big.LITTLE SoC."""
        freqs = {c: f for c, f in (info or self.cpu_info())["max_freq_khz"].items() if f}
        if not freqs:
            raise TargetError(f"cannot read the CPU clocks of {self.where} (/sys/devices/system/cpu/cpu*/cpufreq/"
                              f"cpuinfo_max_freq): pass --cpu-mask instead of --big-cores")
        top = max(freqs.values())
        return sorted(c for c, f in freqs.items() if f == top)


def fingerprint(target: AdbTarget, props: dict[str, str], info: dict[str, Any], runtime: dict[str, str]
                ) -> dict[str, Any]:
    """The device in android_bench.device.fingerprint's shape (the report reads the same keys)."""
    soc = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware")
    maker = props.get("ro.product.manufacturer") or props.get("ro.soc.manufacturer")
    model = props.get("ro.product.model")
    release, sdk = props.get("ro.build.version.release"), props.get("ro.build.version.sdk")
    freqs = info["max_freq_khz"]
    return {
        "hostname": " ".join(p for p in (maker, model) if p) or target.serial,
        "serial": target.serial,
        "arch": props.get("ro.product.cpu.abi"),
        "abi": props.get("ro.product.cpu.abi"),
        "abilist": props.get("ro.product.cpu.abilist"),
        "cpu": soc,
        "soc": soc,
        "board": props.get("ro.board.platform"),
        "hardware": props.get("ro.hardware"),
        "device_model": model,
        "manufacturer": maker,
        "cores": len(freqs) or None,
        "cpu_max_freq_mhz": {str(c): f // 1000 for c, f in sorted(freqs.items()) if f} or None,
        "os": f"Android {release} (SDK {sdk})" if release else None,
        "android": release,
        "sdk": sdk,
        "build": props.get("ro.build.fingerprint"),
        "python": None,
        "numpy": None,
        "runtime": runtime.get("name"),
        "runtime_version": runtime.get("version"),
        "governor": info["governor"],
        "temperature_c": info["temperature_c"] or None,
        "vcgencmd": None,
    }


class AdbSession(Session):
    """A temporary folder under /data/local/tmp on the device, removed on exit; files go by adb push."""

    target: AdbTarget

    def __enter__(self) -> "AdbSession":
        self.target.check_reachable()
        r = self.target.shell(f"mktemp -d {DEVICE_TMP}/android_bench.XXXXXX")
        folder = _text(r.stdout).strip()
        if r.returncode != 0 or not folder.startswith(DEVICE_TMP + "/"):
            raise TargetError(f"cannot make a folder under {DEVICE_TMP} on {self.target.where}: "
                              f"{_text(r.stderr).strip() or folder or r.returncode}")
        self.folder = folder
        return self

    def upload(self, files: dict[str, Path], on_file: Callable[[str], None] | None = None) -> None:
        """adb push each {relative name: local file} into the folder, sub-folders made first."""
        subdirs = sorted({os.path.dirname(n) for n in files} - {""})
        if subdirs:
            r = self.target.shell(self.in_folder("mkdir -p " + " ".join(shlex.quote(d) for d in subdirs)))
            if r.returncode != 0:
                raise TargetError(f"mkdir in {self.folder} on {self.target.where} failed: "
                                  f"{_text(r.stderr).strip() or r.returncode}")
        for name, local in sorted(files.items()):
            self.target.push(Path(local), f"{self.folder}/{name}")
            if on_file:
                on_file(name)
