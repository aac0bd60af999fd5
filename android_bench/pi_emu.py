"""The emulated Raspberry Pi: an arm64 Debian root filesystem, run here under qemu-user.

    sudo .venv/bin/python -m android_bench pi-emu          # make pi-emu: built once, ~10 min, cached
    sudo .venv/bin/python -m android_bench run --target pi-emu build/manifest.json
    sudo .venv/bin/python -m android_bench pi-emu --release bullseye   # make pi-emu-bullseye: Python 3.9

No ARM board is needed to run the ARM software stack: ``debootstrap`` lays
down arm64 Debian bookworm (Python 3.11, what 64-bit Raspberry Pi OS Bookworm
is built on), and the kernel's binfmt_misc hands every aarch64 executable to
``qemu-aarch64-static``, which translates its instructions. Three virtual
environments hold what a Pi user installs from PyPI, each with numpy 1.26.4:

    /opt/venv/tflite_runtime    tflite-runtime 2.14.0
    /opt/venv/ai_edge_litert    ai-edge-litert 2.3.0 (and its dependencies, pinned)
    /opt/venv/mediapipe         mediapipe 1.2.3, MediaPipe Tasks (app-level latency)

so the device runner runs on the very aarch64 wheels a Pi runs: XNNPACK's and
TFLite's ARM (NEON, dot-product) kernels, not the x86 ones. Predictions and
accuracy from it are real results of those kernels. Latencies are NOT: qemu
translates each instruction in software, so they say nothing about a Pi's
speed (the report marks them as emulated).

Each ``Userland`` below is one such file system. ``BULLSEYE`` is Debian 11,
what Raspberry Pi OS Bullseye is built on, for older Pis (``--target
pi-emu-bullseye``): its Python is 3.9, the oldest the device runner supports,
and glibc 2.31, so it gets the newest wheels that still install there
(tflite-runtime 2.13.0, ai-edge-litert 2.1.0). The tests run the Python 3.9
checks in it, which works on any machine that can run the emulated Pi.

The CPU qemu presents is a Cortex-A72, the Raspberry Pi 4's (``QEMU_CPU``,
``PI_CPU`` below), and /proc/cpuinfo says so (:func:`cpuinfo`): it has no
dot-product instructions, so XNNPACK picks the kernels a Pi 4 runs. The same
holds for any aarch64 ``chroot://PATH``. ``--target pi5-emu`` runs the bookworm
file system as a Cortex-A76, a Pi 5's CPU: with dot-product (int8) and fp16 arithmetic,
XNNPACK takes other kernels there.

The file system is built in a temporary folder beside its final place and
renamed when complete; ``pi-emu.json`` at its root records what is in it, and
a rerun with the same recipe only checks the host (seconds). Everything that
enters it runs in a private mount and PID namespace (``unshare``): the
``/proc`` mounted there disappears with the last process, nothing is left
mounted on the host. Building and entering need root (debootstrap, chroot and
binfmt_misc do); without it, or without qemu-user-static or binfmt_misc,
:func:`check_host` says which and what to do.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from imagedata.fashion_mnist import default_cache_dir

ARCH = "arm64"
PI_CPU = "cortex-a72"       # Raspberry Pi 4 (BCM2711); qemu-aarch64 -cpu help lists the others
CACHE = default_cache_dir() / "pi-emu"
STAMP = "pi-emu.json"       # at the root of the file system, written last
FORMAT = 1
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Every wheel pinned, dependencies included: installed offline (pip --no-index) inside the
# chroot, so the file system is the same whenever it is built. tflite-runtime 2.14 is its
# last release (Python <= 3.11, numpy 1.x); ai-edge-litert 2.3 accepts numpy >= 1.23.2.
NUMPY = "numpy==1.26.4"
VENVS = {
    "tflite_runtime": ("tflite-runtime==2.14.0", NUMPY),
    "ai_edge_litert": ("ai-edge-litert==2.3.0", NUMPY, "backports.strenum==1.2.8", "flatbuffers==25.12.19",
                       "ml_dtypes==0.5.4", "protobuf==7.36.2", "tqdm==4.70.1", "typing_extensions==4.16.0"),
    # MediaPipe Tasks, the runner's app-level runtime (android_bench.device.mediapipe_tasks). With
    # numpy 1.26, opencv-contrib-python resolves to 4.11 (its 5.x wheels want numpy 2).
    "mediapipe": ("mediapipe==1.2.3", NUMPY, "absl-py==2.5.1", "certifi==2026.10.19.post1", "cffi==2.1.1",
                  "contourpy==1.3.3", "cycler==0.12.1", "flatbuffers==25.12.19", "fonttools==4.68.0",
                  "kiwisolver==1.5.1", "matplotlib==3.11.2", "opencv-contrib-python==4.11.0.86", "packaging==26.4",
                  "pillow==13.0.0", "pycparser==3.12", "pyparsing==3.3.3", "python-dateutil==4.0.0",
                  "sounddevice==0.5.6", "tzdata==2026.6"),
}
# Bullseye (Python 3.9, glibc 2.31): tflite-runtime 2.14 and ai-edge-litert 2.3 have no aarch64
# wheel for it; these are the newest that install there (what `pip install` gives a Pi on bullseye).
BULLSEYE_VENVS = {
    "tflite_runtime": ("tflite-runtime==2.13.0", NUMPY),
    "ai_edge_litert": ("ai-edge-litert==2.1.0", NUMPY, "backports.strenum==1.3.1", "flatbuffers==25.12.19",
                       "protobuf==6.33.6", "tqdm==4.70.1", "typing_extensions==4.16.0"),
}
VENV_DIR = "/opt/venv"
PACKAGES = ("python3", "python3-venv")     # on top of debootstrap's minbase
# mediapipe's OpenCV (opencv-contrib-python, a Qt build) loads libGL, GLib, libSM and the X
# libraries on import, and its Tasks library links libEGL and libGLESv2 (its GPU path), as on
# Raspberry Pi OS Lite, where `pip install mediapipe` needs
# `apt install libgl1 libglib2.0-0 libsm6 libegl1 libgles2` too.
MEDIAPIPE_PACKAGES = ("libgl1", "libglib2.0-0", "libsm6", "libegl1", "libgles2")


@dataclass(frozen=True, eq=False)
class Userland:
    """One emulated Pi's root file system: a Debian release, its Python, one venv per runtime."""
    suite: str                 # Debian release, as debootstrap names it
    python: str                # the release's python3 ("3.11"): the wheels are picked for it
    glibc: int                 # the minor version of its glibc 2.x: the newest manylinux tag that runs there
    venvs: dict                # {runtime: pinned requirements}
    packages: tuple = PACKAGES

    @property
    def root(self) -> Path:
        return CACHE / f"{self.suite}-{ARCH}"

    @property
    def recipe(self) -> dict:
        """What the file system is built from; a cached one with another recipe is rebuilt."""
        return {"format": FORMAT, "suite": self.suite, "arch": ARCH, "packages": list(self.packages),
                "venvs": {name: list(reqs) for name, reqs in self.venvs.items()}}

    @property
    def wheel_platforms(self) -> tuple:
        # pip does not infer older manylinux tags from a newer one: list every tag the glibc runs
        return tuple(f"manylinux_2_{v}_aarch64" for v in range(self.glibc, 16, -1)) + ("manylinux2014_aarch64",)


BOOKWORM = Userland("bookworm", "3.11", 36, VENVS, PACKAGES + MEDIAPIPE_PACKAGES)     # Raspberry Pi OS Bookworm, 64-bit
BULLSEYE = Userland("bullseye", "3.9", 31, BULLSEYE_VENVS)   # Raspberry Pi OS Bullseye, 64-bit
USERLANDS = {u.suite: u for u in (BOOKWORM, BULLSEYE)}
# --target -> (the file system, the CPU qemu presents); the Pi 5 is a BCM2712, Cortex-A76
TARGETS = {"pi-emu": (BOOKWORM, PI_CPU), "pi5-emu": (BOOKWORM, "cortex-a76"),
           "pi-emu-bullseye": (BULLSEYE, PI_CPU)}
SUITE, ROOTFS = BOOKWORM.suite, BOOKWORM.root   # the default emulated Pi
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# The kernel's entry for aarch64 ELF executables, as Debian's qemu-user-static ships it
# (/usr/lib/binfmt.d/qemu-aarch64.conf) but with the plain interpreter path. F ("fix binary")
# makes the kernel open the interpreter now, so it works inside a chroot that lacks it.
QEMU_NAME = "qemu-aarch64"
QEMU_MAGIC = r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
QEMU_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"


class PiEmuError(RuntimeError):
    """The emulated Pi cannot be built or entered; the message says what to do."""


class CannotEmulate(PiEmuError):
    """This machine cannot run aarch64 code at all (not root, no binfmt_misc, no qemu)."""


def venv_python(runtime: str) -> str:
    return f"{VENV_DIR}/{runtime}/bin/python"


def native() -> bool:
    return os.uname().machine in ("aarch64", "arm64")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        raise CannotEmulate(f"{name} is not installed: apt-get install {package} (Debian/Ubuntu)")
    return path


def _register_qemu(qemu: str) -> None:
    line = f":{QEMU_NAME}:M::{QEMU_MAGIC}:{QEMU_MASK}:{qemu}:F"
    try:
        (BINFMT / "register").write_text(line)
    except OSError as e:
        raise CannotEmulate(f"registering qemu-aarch64 with binfmt_misc failed ({e}). Register it by hand: "
                            f"update-binfmts --enable qemu-aarch64, or echo '{line}' > {BINFMT}/register") from None


def binfmt_entry(name: str = QEMU_NAME) -> dict | None:
    """The kernel's binfmt_misc entry ``name`` as {"enabled", "interpreter", "flags"}, None if absent."""
    path = BINFMT / name
    if not path.is_file():
        return None
    text = path.read_text()
    field = lambda key: (re.search(rf"^{key}\s*:?\s*(.*)$", text, re.M) or [None, ""])[1].strip()
    return {"enabled": text.startswith("enabled"), "interpreter": field("interpreter"), "flags": field("flags")}


def check_host(register: bool = True) -> dict:
    """What entering an arm64 file system needs here, made ready where this process may do it.

    Returns {"qemu": path or None (aarch64 host), "qemu_version", "binfmt": entry}. Mounts
    binfmt_misc and registers qemu-aarch64 (with the F flag) when missing and ``register``;
    raises CannotEmulate saying what to do when it cannot.
    """
    if sys.platform != "linux":
        raise CannotEmulate(f"the emulated Pi needs Linux (chroot, binfmt_misc), this is {sys.platform}")
    if os.geteuid() != 0:
        raise CannotEmulate("the emulated Pi needs root: debootstrap, chroot and binfmt_misc do. Run it as root "
                            "(sudo make pi-emu; sudo .venv/bin/python -m android_bench run --target pi-emu), "
                            "or benchmark a real Pi with --target ssh://pi@raspberrypi")
    for tool, package in (("unshare", "util-linux"), ("chroot", "coreutils")):
        _tool(tool, package)
    if native():
        return {"qemu": None, "qemu_version": None, "binfmt": None}
    qemu = _tool("qemu-aarch64-static", "qemu-user-static")
    if not (BINFMT / "register").exists():
        if not register:
            raise CannotEmulate(f"binfmt_misc is not mounted: mount -t binfmt_misc binfmt_misc {BINFMT}")
        r = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True, text=True)
        if r.returncode != 0:
            raise CannotEmulate(
                f"binfmt_misc is not mounted and mounting it failed ({r.stderr.strip() or r.returncode}): the kernel "
                f"cannot hand aarch64 programs to qemu. In a container, start it with --privileged or register "
                f"qemu-aarch64 on the host (apt-get install qemu-user-static there); otherwise load the module: "
                f"modprobe binfmt_misc && mount -t binfmt_misc binfmt_misc {BINFMT}")
    status = (BINFMT / "status").read_text().strip() if (BINFMT / "status").exists() else "enabled"
    if status != "enabled":
        raise CannotEmulate(f"binfmt_misc is {status}: echo 1 > {BINFMT}/status")
    entry = binfmt_entry()
    if entry is None and register:
        _register_qemu(qemu)
        entry = binfmt_entry()
    if entry is None:
        raise CannotEmulate("qemu-aarch64 is not registered with binfmt_misc: update-binfmts --enable qemu-aarch64 "
                            "(or run this as root, which registers it)")
    if not entry["enabled"]:
        raise CannotEmulate(f"the binfmt_misc entry {QEMU_NAME} is disabled: echo 1 > {BINFMT / QEMU_NAME}")
    if "F" not in entry["flags"]:
        raise CannotEmulate(
            f"qemu-aarch64 is registered with binfmt_misc without the F flag (interpreter {entry['interpreter']}, "
            f"flags '{entry['flags']}'), so programs inside a chroot cannot reach the interpreter. Re-register it: "
            f"echo -1 > {BINFMT / QEMU_NAME}, then run this again (it registers {qemu} with F)")
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    return {"qemu": qemu, "qemu_version": version, "binfmt": entry}


def enter(root: Path | str, argv: Sequence[str], qemu_cpu: str | None = None) -> list[str]:
    """The host command that runs ``argv`` inside ``root``, in a private mount and PID namespace.

    A clean environment (no host TMPDIR or PYTHONPATH leaks in); /proc of the new PID
    namespace and a read-only /sys mounted inside (both gone with the last process: nothing
    stays mounted); the child killed if the host side is (a timeout leaves no qemu behind).
    With ``qemu_cpu``, qemu emulates that CPU and /proc/cpuinfo shows it (see cpuinfo()).
    """
    env = ["env", "-i", f"PATH={PATH}", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb"]
    cpuinfo_file = ""
    if qemu_cpu:
        env.append(f"QEMU_CPU={qemu_cpu}")    # read by every qemu-aarch64 the kernel starts below
        cpuinfo_file = str(_write_cpuinfo(Path(root), qemu_cpu))
    return [*env, "unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", _ENTER, "enter",
            str(root), cpuinfo_file, *argv]


# Run by the host's sh as PID 1 of the new namespaces (unshare's mounts are private). /sys:
# XNNPACK's cpuinfo library reads the CPU lists in /sys/devices/system/cpu and, without them,
# fails to initialize (no XNNPACK delegate). No core files: qemu writes them itself, slowly.
_ENTER = ('root=$1; cpuinfo=$2; shift 2; ulimit -c 0; mount -t proc proc "$root/proc" && '
          'mount -t sysfs -o ro sysfs "$root/sys" && '
          '{ [ -z "$cpuinfo" ] || mount --bind "$cpuinfo" "$root/proc/cpuinfo"; } && exec chroot "$root" "$@"')

# (MIDR variant, part, revision, Features line) of the CPUs qemu can present as a Pi's.
CPUS = {"cortex-a72": ("0x0", "0xd08", "3", "fp asimd evtstrm crc32 cpuid"),               # Raspberry Pi 4
        "cortex-a76": ("0x4", "0xd0b", "1", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp "
                       "asimdhp cpuid asimdrdm lrcpc dcpop asimddp")}                          # Raspberry Pi 5


def cpuinfo(qemu_cpu: str, cores: int | None = None) -> str:
    """/proc/cpuinfo as an arm64 kernel writes it for ``qemu_cpu``, one block per core.

    qemu 7.2 passes the host's own /proc/cpuinfo through to aarch64 programs. The cpuinfo
    library inside XNNPACK then finds x86 fields where it expects "CPU part" lines, and
    ai-edge-litert 2.3 crashes (SIGSEGV in allocate_tensors, when XNNPACK is applied). This is
    what it would read on the emulated CPU; "Hardware" says it is qemu, so the device
    fingerprint names the emulator, not a board.
    """
    if qemu_cpu not in CPUS:
        raise PiEmuError(f"qemu CPU must be one of {', '.join(CPUS)}, got {qemu_cpu!r}")
    variant, part, revision, features = CPUS[qemu_cpu]
    blocks = [f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
              f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n"
              for i in range(cores or os.cpu_count() or 1)]
    return "\n".join(blocks) + f"\nHardware\t: qemu-aarch64 emulating a {qemu_cpu} CPU\n"


def _write_cpuinfo(root: Path, qemu_cpu: str) -> Path:
    path = root / "run" / f"android_bench-cpuinfo-{qemu_cpu}"
    text = cpuinfo(qemu_cpu)
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_stamp(root: Path | str) -> dict | None:
    try:
        return json.loads((Path(root) / STAMP).read_text())
    except (OSError, ValueError):
        return None


def check_rootfs(root: Path | str) -> None:
    """A TargetError-worthy PiEmuError unless ``root`` is a root file system this machine can enter."""
    root = Path(root)
    if not root.is_dir():
        raise PiEmuError(f"chroot target '{root}' is not a folder: give the root of a Linux file system "
                         f"(for the emulated Pi: make pi-emu, then --target pi-emu)")
    if not any((root / sh).exists() or (root / sh).is_symlink() for sh in ("bin/sh", "usr/bin/sh")):
        raise PiEmuError(f"'{root}' is not a root file system: it has no bin/sh. Give the folder that holds "
                         f"bin/, usr/ and etc/ (for the emulated Pi: make pi-emu, then --target pi-emu)")
    if not (root / "proc").is_dir():
        raise PiEmuError(f"'{root}' has no proc/ folder to mount /proc on: mkdir {root / 'proc'}")
    check_host()
    r = subprocess.run(enter(root, ["/bin/sh", "-c", "true"]), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        said = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        raise PiEmuError(f"cannot run programs inside '{root}': {said}. "
                         + ("Its executables are for another architecture than qemu-aarch64 handles"
                            if "format error" in said else "Check that it is a complete root file system"))


def _stream(argv: Sequence[str], log: Path, on_line: Callable[[str], None], what: str) -> None:
    """Run ``argv``, its output appended to ``log`` and handed line by line to ``on_line``."""
    with open(log, "a") as f:
        f.write(f"$ {' '.join(argv)}\n")
        f.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1)
        tail: list[str] = []
        try:
            for line in proc.stdout:
                f.write(line)
                tail = (tail + [line.rstrip()])[-5:]
                on_line(line.rstrip())
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if code != 0:
        raise PiEmuError(f"{what} failed (exit {code}): {' | '.join(t for t in tail if t)}. Full log: {log}")


@contextmanager
def _bar(desc: str, total: int | None, unit: str):
    from pipeline.quiet import progress
    with progress(total=total, desc=desc, unit=unit, dynamic_ncols=True) as bar:
        def step(line: str) -> None:
            if line.startswith("I: "):
                if total is None or bar.n < total:
                    bar.update(1)
                bar.set_postfix_str(line[3:60], refresh=True)
        yield step


def download_wheels(dest: Path, userland: Userland = BOOKWORM) -> None:
    """The pinned aarch64 wheels of every venv of ``userland`` into ``dest``, with this machine's pip (PyPI)."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = sorted({req for reqs in userland.venvs.values() for req in reqs})
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet", "--no-deps",
            "--only-binary=:all:", "--python-version", userland.python, "--implementation", "cp",
            *[a for p in userland.wheel_platforms for a in ("--platform", p)], "--dest", str(dest), *wanted]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR")] or r.stderr.splitlines()[-3:]
        raise PiEmuError(f"downloading the aarch64 wheels ({', '.join(wanted)}) failed: {' | '.join(errors)}. "
                         f"Building the emulated Pi needs PyPI (or a pip index set with PIP_INDEX_URL)")


def mirror() -> str:
    """The Debian mirror this machine's apt uses (deb.debian.org when it names none)."""
    for path in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + [Path("/etc/apt/sources.list")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        m = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or \
            re.search(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+/debian)/?\s+\S+", text, re.M)
        if m:
            return m.group(1)
    return DEFAULT_MIRROR


def build(userland: Userland = BOOKWORM, mirror_url: str | None = None, force: bool = False,
          echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """Build ``userland``'s file system at ``userland.root`` unless it is there with this recipe.

    Returns its stamp. About 10 minutes the first time (most of it debootstrap's second
    stage, which runs dpkg under emulation); seconds afterwards.
    """
    root, recipe, suite = userland.root, userland.recipe, userland.suite
    host = check_host()
    stamp = read_stamp(root)
    if stamp and stamp.get("recipe") == recipe and not force:
        return stamp
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # a second build waits, then finds it done
        stamp = read_stamp(root)
        if stamp and stamp.get("recipe") == recipe and not force:
            return stamp
        for stale in root.parent.glob(f"{root.name}.partial-*"):
            echo(f"removing the unfinished build {stale}")
            shutil.rmtree(stale)
        tmp = Path(tempfile.mkdtemp(prefix=f"{root.name}.partial-", dir=root.parent))
        os.chmod(tmp, 0o755)
        log = root.parent / f"{root.name}.build.log"
        log.write_text("")
        started = time.time()
        url = mirror_url or mirror()
        echo(f"building the emulated Pi ({suite} {ARCH}, {', '.join(userland.packages)}) in {tmp} from {url}; "
             f"log: {log}")
        wheels = root.parent / f"wheels-{suite}"
        echo(f"downloading the aarch64 wheels to {wheels}")
        download_wheels(wheels, userland)
        debootstrap = _tool("debootstrap", "debootstrap")
        first = [debootstrap, f"--arch={ARCH}", "--foreign", "--variant=minbase",
                 f"--include={','.join(userland.packages)}", suite, str(tmp), url]
        if native():
            first.remove("--foreign")
        with _bar("debootstrap: download", None, "step") as step:
            _stream(first, log, step, f"debootstrap (download of {suite} {ARCH} from {url})")
        if not native():
            packages = sum(len((tmp / "debootstrap" / n).read_text().split())
                           for n in ("required", "base") if (tmp / "debootstrap" / n).exists())
            with _bar("debootstrap: install under qemu", 2 * packages or None, "step") as step:
                _stream(enter(tmp, ["/debootstrap/debootstrap", "--second-stage"]), log, step,
                        "debootstrap --second-stage (installing the packages under qemu)")
        (tmp / "opt" / "wheels").mkdir(parents=True, exist_ok=True)
        for wheel in wheels.glob("*.whl"):
            shutil.copy2(wheel, tmp / "opt" / "wheels")
        venvs = {}
        with _bar("virtual environments", 2 * len(userland.venvs), "step") as step:
            for runtime, reqs in userland.venvs.items():
                where = f"{VENV_DIR}/{runtime}"
                step(f"I: python3 -m venv {where}")
                _stream(enter(tmp, ["python3", "-m", "venv", where]), log, lambda s: None, f"python3 -m venv {where}")
                step(f"I: pip install {' '.join(reqs)}")
                _stream(enter(tmp, [venv_python(runtime), "-m", "pip", "install", "--quiet", "--no-index",
                                    "--disable-pip-version-check", "--find-links", "/opt/wheels", *reqs]),
                        log, lambda s: None, f"pip install {' '.join(reqs)} in {where}")
                module = runtime
                probe = (f"import sys, numpy, {module}; print(sys.version.split()[0], numpy.__version__, "
                         f"{module}.__version__)")
                r = subprocess.run(enter(tmp, [venv_python(runtime), "-c", probe], PI_CPU),
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise PiEmuError(f"{runtime} does not import in {where}: {r.stderr.strip()[-500:]}. Log: {log}")
                python, numpy, version = r.stdout.split()
                venvs[runtime] = {"python": venv_python(runtime), "python_version": python, "numpy": numpy,
                                  "runtime_version": version, "requirements": list(reqs)}
        shutil.rmtree(tmp / "opt" / "wheels")
        stamp = {"artifact": "android_bench pi-emu root file system", "format": FORMAT, "recipe": recipe,
                 "mirror": url, "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "build_seconds": round(time.time() - started), "qemu": host["qemu_version"],
                 "qemu_cpu": PI_CPU, "venvs": venvs}
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
        old = None
        if root.exists():
            old = root.parent / f"{root.name}.partial-old-{os.getpid()}"
            os.replace(root, old)
        os.replace(tmp, root)
        if old is not None:
            shutil.rmtree(old)
        echo(f"built {root} in {stamp['build_seconds'] / 60:.1f} min: "
             + ", ".join(f"{r} {v['runtime_version']} (numpy {v['numpy']}, Python {v['python_version']})"
                         for r, v in venvs.items()))
        return stamp


def make_target(userland: Userland) -> str:
    """The make target that builds ``userland``: pi-emu, pi-emu-bullseye."""
    return "pi-emu" if userland is BOOKWORM else f"pi-emu-{userland.suite}"


def ready(root: Path | str | None = None, userland: Userland = BOOKWORM) -> dict:
    """The stamp of a complete build of ``userland`` (at ``root``, default its own), or a
    PiEmuError saying to build it."""
    root = Path(root) if root is not None else userland.root
    stamp = read_stamp(root)
    build_it = f"make {make_target(userland)}"
    if stamp is None:
        raise PiEmuError(f"the emulated Pi is not built ({root} has no {STAMP}): run `{build_it}` "
                         f"(as root, about 10 minutes once)")
    if stamp.get("recipe") != userland.recipe:
        raise PiEmuError(f"the emulated Pi at {root} was built from another recipe than this checkout's: "
                         f"run `{build_it}` again to rebuild it")
    return stamp


ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64", 0x28: "arm", 0x03: "i386", 0xF3: "riscv64"}


def elf_machine(root: Path | str) -> str | None:
    """The architecture of the root file system's executables (of its env), None if unreadable."""
    for exe in ("usr/bin/env", "bin/env"):
        try:
            with open(Path(root) / exe, "rb") as f:
                head = f.read(20)
        except OSError:
            continue
        if head[:4] == b"\x7fELF":
            return ELF_MACHINES.get(int.from_bytes(head[18:20], "little"), f"ELF machine {head[18]:#x}")
    return None


def emulated_cpu(root: Path | str) -> str | None:
    """The CPU qemu presents for ``root``: PI_CPU for an aarch64 file system on another host, else None."""
    return PI_CPU if elf_machine(root) == "aarch64" and not native() else None


def emulation(root: Path | str, qemu_cpu: str | None) -> str | None:
    """How programs in ``root`` run here: None when natively, else the emulator and its CPU."""
    arch = elf_machine(root)
    host = os.uname().machine
    if arch is None or arch == host or (arch == "aarch64" and native()):
        return None
    stamp = read_stamp(root) or {}
    qemu = stamp.get("qemu") or f"qemu-{arch}"
    return f"{qemu}, user-mode emulation of a {qemu_cpu or 'default'} CPU ({arch}) on {host}"
