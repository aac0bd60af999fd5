"""A TEST DOUBLE of adb: Android phones that are folders on this machine.

No phone or emulator can run where the tests run, so the adb target is tested
against this stand-in. It is not a mock: it executes the commands it is handed,
on this machine, the way adb has a phone execute them:

* ``adb devices`` lists the fake devices of ``$FAKE_ADB_HOME/devices.json``
  (state ``device``, ``unauthorized`` or ``offline``), and ``-s SERIAL`` picks
  one, with adb's own errors for none, several, unknown, unauthorized, offline;
* ``adb push LOCAL REMOTE`` copies into the device's folder, where
  ``/data/local/tmp`` is ``<device root>/data/local/tmp`` (the only writable
  place, as for adb's shell user); ``adb pull`` copies back;
* ``adb shell CMD...`` joins its arguments with spaces (as adb does) and runs
  them with ``sh -c`` in the device's root, ``/data/local/tmp`` and ``/sys/``
  mapped into it; the device's PATH holds only a few toybox-like tools and
  ``getprop``, which answers from the device's property table; the paths it
  prints are mapped back; the exit status is the command's (adb's shell protocol).

Install it with ``install(bin_dir)`` (an ``adb`` script first on PATH) and
``FakeDevice(home, serial).create(...)`` for each phone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

TOOLS = ("sh", "cat", "chmod", "mkdir", "mktemp", "rm", "ls", "taskset", "sed", "sha256sum", "echo", "true",
         "false", "test", "env", "uname", "sleep", "cp", "mv", "head", "tail", "grep", "tr", "wc", "id", "nproc")
MAPPED = ("/data/local/tmp", "/sys/")


def install(bin_dir: Path) -> Path:
    """Writes ``bin_dir/adb`` (this test double); put bin_dir first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    adb = bin_dir / "adb"
    adb.write_text(f"#!/bin/sh\n# test double of adb: {__file__}\nexec {sys.executable} {Path(__file__).resolve()} "
                   f"\"$@\"\n")
    adb.chmod(0o755)
    return adb


class FakeDevice:
    """One fake phone: ``home/<serial>/`` holds its root file system and property table."""

    def __init__(self, home: Path, serial: str):
        self.home, self.serial = Path(home), serial
        self.root = self.home / serial / "root"

    def create(self, props: dict[str, str], state: str = "device", max_freq_khz: dict[int, int] | None = None,
               governor: str = "schedutil", temperature_mc: int = 41000) -> "FakeDevice":
        bin_dir = self.root / "system" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (self.root / "data" / "local" / "tmp").mkdir(parents=True, exist_ok=True)
        for tool in TOOLS:
            found = shutil.which(tool)
            if found and not (bin_dir / tool).exists():
                (bin_dir / tool).symlink_to(found)
        table = self.home / self.serial / "props.txt"
        table.write_text("".join(f"[{k}]: [{v}]\n" for k, v in props.items()))
        getprop = bin_dir / "getprop"
        getprop.write_text(f"#!/bin/sh\nif [ $# -eq 0 ]; then cat '{table}'; else "
                           f"sed -n \"s/^\\[$1\\]: \\[\\(.*\\)\\]$/\\1/p\" '{table}'; fi\n")
        getprop.chmod(0o755)
        for cpu, khz in (max_freq_khz or {0: 1800000}).items():
            freq = self.root / "sys" / "devices" / "system" / "cpu" / f"cpu{cpu}" / "cpufreq"
            freq.mkdir(parents=True, exist_ok=True)
            (freq / "cpuinfo_max_freq").write_text(f"{khz}\n")
            (freq / "scaling_governor").write_text(f"{governor}\n")
        zone = self.root / "sys" / "class" / "thermal" / "thermal_zone0"
        zone.mkdir(parents=True, exist_ok=True)
        (zone / "type").write_text("cpu-therm\n")
        (zone / "temp").write_text(f"{temperature_mc}\n")
        devices_file = self.home / "devices.json"
        devices = json.loads(devices_file.read_text()) if devices_file.exists() else []
        devices = [d for d in devices if d["serial"] != self.serial] + [{"serial": self.serial, "state": state}]
        devices_file.write_text(json.dumps(devices))
        return self

    def tmp_entries(self) -> list[str]:
        return sorted(p.name for p in (self.root / "data" / "local" / "tmp").iterdir())


def _fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def _to_host(root: Path, text: str) -> str:
    for prefix in MAPPED:
        text = text.replace(prefix, f"{root}{prefix}")
    return text


def _device_path(root: Path, remote: str) -> Path | None:
    if remote.startswith("/data/local/tmp"):
        return Path(f"{root}{remote}")
    return None


def main(argv: list[str]) -> int:
    home = Path(os.environ["FAKE_ADB_HOME"])
    devices_file = home / "devices.json"
    devices = json.loads(devices_file.read_text()) if devices_file.exists() else []
    serial = None
    if argv[:1] == ["-s"]:
        serial, argv = argv[1], argv[2:]
    if not argv:
        return _fail("adb: usage: no command specified")
    command, args = argv[0], argv[1:]
    if command == "devices":
        print("List of devices attached")
        for d in devices:
            print(f"{d['serial']}\t{d['state']}")
        print()
        return 0
    if serial is None:
        if not devices:
            return _fail("adb: no devices/emulators found")
        if len(devices) > 1:
            return _fail("adb: more than one device/emulator")
        serial = devices[0]["serial"]
    state = {d["serial"]: d["state"] for d in devices}.get(serial)
    if state is None:
        return _fail(f"adb: device '{serial}' not found")
    if command == "get-state":
        if state != "device":
            return _fail(f"error: device {state}")
        print("device")
        return 0
    if state == "unauthorized":
        return _fail("adb: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
                     "Try 'adb kill-server' if that seems wrong.\nOtherwise check for a confirmation dialog on your device.")
    if state != "device":
        return _fail(f"adb: device {state}")
    root = FakeDevice(home, serial).root
    if command == "push":
        *sources, remote = args
        target = _device_path(root, remote)
        if target is None:
            return _fail(f"adb: error: failed to copy '{sources[0]}' to '{remote}': remote Permission denied")
        for src in sources:
            dest = target / Path(src).name if target.is_dir() or remote.endswith("/") else target
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            print(f"{src}: 1 file pushed, 0 skipped. ({os.path.getsize(src)} bytes)")
        return 0
    if command == "pull":
        remote, local = args[0], args[1] if len(args) > 1 else "."
        source = _device_path(root, remote)
        if source is None or not source.is_file():
            return _fail(f"adb: error: failed to stat remote object '{remote}': No such file or directory")
        dest = Path(local) / source.name if Path(local).is_dir() else Path(local)
        shutil.copyfile(source, dest)
        print(f"{remote}: 1 file pulled, 0 skipped.")
        return 0
    if command == "shell":
        script = _to_host(root, " ".join(args))
        env = dict(os.environ, PATH=str(root / "system" / "bin"), TMPDIR=str(root / "data" / "local" / "tmp"),
                   HOME=str(root / "data" / "local" / "tmp"))
        r = subprocess.run(["/bin/sh", "-c", script], cwd=root, env=env, capture_output=True,
                           stdin=subprocess.DEVNULL)
        sys.stdout.buffer.write(r.stdout.replace(str(root).encode(), b""))
        sys.stderr.buffer.write(r.stderr.replace(str(root).encode(), b""))
        return r.returncode
    return _fail(f"adb: unknown command {command} (this test double knows devices, get-state, push, pull, shell)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
