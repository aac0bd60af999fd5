"""Where the device runner runs: this machine, or a Pi (or any Linux box) over ssh.

    local                     a temporary folder here, the given Python (default: this one)
    ssh://pi@raspberrypi      key login, port 22, the target's python3
    ssh://pi@10.0.0.7:2222
    pi-emu                    the emulated Raspberry Pi 4 (arm64 bookworm under qemu; make pi-emu)
    pi5-emu                   the same file system emulating a Pi 5's CPU (Cortex-A76)
    pi-emu-bullseye           the emulated Pi 4 on Debian bullseye, Python 3.9 (make pi-emu-bullseye)
    chroot:///srv/rootfs      any root file system on this machine, entered with chroot (as root)

Both go through a shell command on the target, so they share every step:
make a temporary folder (``mktemp -d``), unpack a tar stream of the runner's
files, the models and the eval pack into it, run the runner there, read the
results back with ``cat``, and remove the folder. ssh runs with
``BatchMode=yes``: a missing key fails at once with a message instead of
waiting at a password prompt no one sees, and so does a host key that is
unknown or changed (named as such, with its fix).
"""
from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

SSH_NOT_REACHED = 255   # ssh's own exit status for connection and login failures
COMMAND_NOT_FOUND, NOT_EXECUTABLE = 127, 126   # the shell's statuses


class TargetError(RuntimeError):
    """The target cannot run the benchmark; the message says what to do."""


@dataclass(frozen=True)
class Target:
    spec: str                 # as the user wrote it: "local", "ssh://pi@host:2222"
    python: str               # the target's Python, a path or a name on its PATH

    def command(self, shell_command: str) -> list[str]:
        raise NotImplementedError

    @property
    def where(self) -> str:
        return "this machine"

    def shell(self, shell_command: str, data: bytes | None = None, timeout: float | None = 120
              ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.command(shell_command), input=data, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TargetError(f"{self.where} did not answer within {timeout:g} s "
                              f"(running: {shell_command[:80]})") from None

    def check_reachable(self) -> None:
        pass

    @property
    def emulation(self) -> str | None:
        """How the target's CPU is emulated (qemu), None on real hardware: its latencies are then not real."""
        return None

    def slug(self) -> str:
        """The target as a file name: results/<slug>__<runtime>.json."""
        return re.sub(r"[^A-Za-z0-9_.@-]+", "_", self.spec.replace("ssh://", "ssh_")).strip("_")


@dataclass(frozen=True)
class LocalTarget(Target):
    spec: str = "local"
    python: str = field(default_factory=lambda: sys.executable)

    def command(self, shell_command: str) -> list[str]:
        return ["sh", "-c", shell_command]


@dataclass(frozen=True)
class SshTarget(Target):
    user: str | None = None
    host: str = ""
    port: int = 22
    options: tuple = ()       # extra ssh arguments, e.g. ("-i", "key", "-o", "UserKnownHostsFile=...")
    connect_timeout: int = 10

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def where(self) -> str:
        return f"{self.login} (port {self.port})"

    def command(self, shell_command: str) -> list[str]:
        return ["ssh", "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                "-o", "ServerAliveInterval=15", "-p", str(self.port), *self.options, self.login,
                shell_command]

    def check_reachable(self) -> None:
        r = self.shell("true", timeout=self.connect_timeout + 20)
        if r.returncode == 0:
            return
        host_key = self.host_key_problem(r.stderr)
        if host_key:
            raise TargetError(host_key)
        said = _last_line(r.stderr) or f"exit status {r.returncode}"
        raise TargetError(
            f"cannot log in to {self.where} over ssh: {said}. The benchmark needs key login without a "
            f"password prompt: check the host is up, then `ssh-copy-id -p {self.port} {self.login}` and "
            f"`ssh -p {self.port} {self.login} true` must succeed")

    def host_key_problem(self, stderr: bytes) -> str | None:
        """What to do when ssh refused the *host's* key (before any login), None for another failure.

        With BatchMode, ssh cannot ask whether to trust an unknown host key, and it refuses a
        key that differs from the one known_hosts recorded; both end in "Host key verification
        failed", which is not a missing user key: ssh-copy-id does not help.
        """
        text = stderr.decode("utf-8", "replace")
        if "Host key verification failed" not in text and "HOST IDENTIFICATION HAS CHANGED" not in text:
            return None
        name = f"[{self.host}]:{self.port}" if self.port != 22 else self.host
        if "HOST IDENTIFICATION HAS CHANGED" in text:
            return (f"the host key of {self.where} has CHANGED since known_hosts recorded it, so ssh refused to "
                    f"connect (host key verification failed; no login was tried). If the machine was re-installed "
                    f"or is another one at that address, remove the old key with `ssh-keygen -R '{name}'` and "
                    f"connect once by hand (`ssh -p {self.port} {self.login}`) to check and accept the new one; "
                    f"if not, someone may be in the middle of the connection")
        return (f"the host key of {self.where} is not known here, and ssh in batch mode cannot ask whether to "
                f"trust it (host key verification failed; no login was tried). Connect once by hand to check and "
                f"accept it: `ssh -p {self.port} {self.login} true`; or trust it on first use with "
                f"-o StrictHostKeyChecking=accept-new (make bench SSH_OPTIONS=StrictHostKeyChecking=accept-new)")


@dataclass(frozen=True)
class ChrootTarget(Target):
    """A root file system on this machine, entered with chroot (android_bench.pi_emu.enter).

    ``pi-emu`` is the emulated Raspberry Pi that ``make pi-emu`` builds: arm64 Debian
    bookworm whose programs run under qemu-aarch64 as a Cortex-A72 (``pi5-emu``: the same
    file system as a Cortex-A76, the Pi 5's, with dot-product and fp16 instructions; ``pi-emu-bullseye``:
    Debian bullseye with Python 3.9, as a Cortex-A72), one venv per runtime (``venvs``: one run each
    when --runtime is auto and --python is not given).
    ``chroot://PATH`` is any root file system (relative paths are from here); an aarch64 one
    runs under qemu as the same Cortex-A72.
    """
    root: str = ""
    qemu_cpu: str | None = None
    venvs: tuple = ()          # ((runtime, its Python inside the root), ...), from the root's pi-emu.json

    @classmethod
    def parse(cls, spec: str, python: str | None = None) -> "ChrootTarget":
        from android_bench import pi_emu
        if spec in pi_emu.TARGETS:
            userland, cpu = pi_emu.TARGETS[spec]
            root = userland.root
            try:
                stamp = pi_emu.ready(userland=userland)
            except pi_emu.PiEmuError as e:
                raise TargetError(str(e)) from None
        else:
            path = spec[len("chroot://"):]
            if not path:
                raise TargetError(f"chroot:// needs the root file system's folder: chroot:///srv/rootfs, got {spec!r}")
            root = Path(path).resolve()
            cpu = pi_emu.emulated_cpu(root)
            stamp = pi_emu.read_stamp(root) or {}
        venvs = tuple((name, v["python"]) for name, v in stamp.get("venvs", {}).items())
        return cls(spec=spec, python=python or (venvs[0][1] if venvs else "python3"), root=str(root),
                   qemu_cpu=cpu, venvs=venvs)

    def with_runtime(self, runtime: str) -> "ChrootTarget":
        """This target with the Python of the venv that holds ``runtime``."""
        pythons = dict(self.venvs)
        if runtime not in pythons:
            raise TargetError(f"{self.where} has no venv with {runtime} (it has: {', '.join(pythons) or 'none'}); "
                              f"pass --python /path/inside/the/root/to/python3")
        return replace(self, python=pythons[runtime])

    @property
    def where(self) -> str:
        from android_bench import pi_emu
        return f"the emulated Pi ({self.spec}, {self.root})" if self.spec in pi_emu.TARGETS else \
            f"the chroot {self.root}"

    @property
    def emulation(self) -> str | None:
        from android_bench import pi_emu
        return pi_emu.emulation(self.root, self.qemu_cpu)

    def command(self, shell_command: str) -> list[str]:
        from android_bench import pi_emu
        return pi_emu.enter(self.root, ["/bin/sh", "-c", shell_command], self.qemu_cpu)

    def check_reachable(self) -> None:
        from android_bench import pi_emu
        try:
            pi_emu.check_rootfs(self.root)
        except pi_emu.PiEmuError as e:
            raise TargetError(str(e)) from None


def parse_target(spec: str, python: str | None = None, ssh_options: Sequence[str] = ()) -> Target:
    """``local`` or ``ssh://[user@]host[:port]``; ``python`` is the target's interpreter."""
    if spec == "local":
        # The runner runs in a temporary folder: a relative path (.venv/bin/python) is made
        # absolute here, a bare name (python3) stays a name looked up on PATH.
        if python and os.sep in python:
            python = os.path.abspath(python)
        return LocalTarget(python=python or sys.executable)
    from android_bench.pi_emu import TARGETS as EMULATED
    if spec in EMULATED or spec.startswith("chroot://"):
        return ChrootTarget.parse(spec, python)
    if spec == "adb" or spec.startswith("adb:"):   # an Android phone: android_bench.adb
        from android_bench.adb import AdbTarget
        return AdbTarget.from_spec(spec, python)
    m = re.fullmatch(r"ssh://(?:([^@/:\s]+)@)?([^@/:\s\[\]]+|\[[0-9a-fA-F:]+\])(?::(\d+))?/?", spec)
    if not m:
        raise TargetError(f"target must be 'local', 'ssh://[user@]host[:port]', 'pi-emu', 'chroot://PATH' "
                          f"or 'adb[:SERIAL]', got {spec!r}")
    port = int(m.group(3) or 22)
    if not 0 < port < 65536:
        raise TargetError(f"ssh port must be 1-65535, got {port} in {spec!r}")
    return SshTarget(spec=spec, python=python or "python3", user=m.group(1), host=m.group(2).strip("[]"),
                     port=port, options=tuple(ssh_options))


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def tar_bytes(files: dict[str, Path]) -> bytes:
    """An uncompressed tar of {name in the archive: local file}: models are already dense."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in sorted(files.items()):
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


class Session:
    """A temporary folder on the target, removed on exit: ``with Session(target) as s: ...``."""

    def __init__(self, target: Target):
        self.target = target
        self.folder: str | None = None

    def __enter__(self) -> "Session":
        self.target.check_reachable()
        r = self.target.shell('mktemp -d "${TMPDIR:-/tmp}/android_bench.XXXXXX"')
        if r.returncode != 0 or not r.stdout.strip():
            raise TargetError(f"cannot make a temporary folder on {self.target.where}: "
                              f"{_last_line(r.stderr) or r.returncode}")
        self.folder = r.stdout.decode().strip()
        return self

    def __exit__(self, *exc) -> bool:
        if self.folder:
            r = self.target.shell(f"rm -rf {shlex.quote(self.folder)}")
            if r.returncode != 0 and exc[0] is None:
                raise TargetError(f"could not remove {self.folder} on {self.target.where}: {_last_line(r.stderr)}")
        return False

    def in_folder(self, command: str) -> str:
        return f"cd {shlex.quote(self.folder)} && {command}"

    def upload(self, files: dict[str, Path]) -> None:
        r = self.target.shell(self.in_folder("tar -xf -"), data=tar_bytes(files), timeout=None)
        if r.returncode != 0:
            raise TargetError(f"copying {len(files)} files to {self.target.where}:{self.folder} failed: "
                              f"{_last_line(r.stderr) or r.returncode}")

    def read(self, name: str) -> bytes:
        r = self.target.shell(self.in_folder(f"cat {shlex.quote(name)}"), timeout=None)
        if r.returncode != 0:
            raise TargetError(f"cannot read {name} back from {self.target.where}: {_last_line(r.stderr)}")
        return r.stdout

    def python(self, args: Sequence[str], on_line: Callable[[str], None] | None = None,
               timeout: float | None = 120) -> tuple[int, str, list[str]]:
        """Run the target's Python in the folder: (exit status, stdout, stderr lines).

        Exit 127 (not found) is turned into a TargetError saying what to install.
        With ``on_line``, stderr is streamed line by line as it arrives.
        """
        command = self.in_folder(" ".join(shlex.quote(a) for a in [self.target.python, *args]))
        argv = self.target.command(command)
        if on_line is None:
            try:
                r = subprocess.run(argv, capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise TargetError(f"{self.target.python} on {self.target.where} did not finish "
                                  f"within {timeout:g} s") from None
            code, out, err = r.returncode, r.stdout.decode("utf-8", "replace"), \
                r.stderr.decode("utf-8", "replace").splitlines()
        else:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                                    bufsize=1)
            err = []
            try:
                for line in proc.stderr:
                    line = line.rstrip("\n")
                    err.append(line)
                    on_line(line)
                out = proc.stdout.read()
                code = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if code in (COMMAND_NOT_FOUND, NOT_EXECUTABLE):
            how = "was not found" if code == COMMAND_NOT_FOUND else "cannot be executed"
            raise TargetError(f"{self.target.python} {how} on {self.target.where}: install Python 3.9 "
                              f"or newer (sudo apt install python3 python3-pip) or pass --python "
                              f"/path/to/python3")
        if code == SSH_NOT_REACHED and isinstance(self.target, SshTarget):
            raise TargetError(self.target.host_key_problem("\n".join(err).encode()) or
                              f"the ssh connection to {self.target.where} failed: {err[-1] if err else 'no message'}")
        return code, out, err
