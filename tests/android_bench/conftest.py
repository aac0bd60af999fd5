"""Fixtures of the benchmark tests: tiny exported models, a real sshd, a tflite-runtime-only venv."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from imagedata.fashion_mnist import default_cache_dir
from tests.conftest import free_port, make_blobs, online  # noqa: F401 (free_port: imported from here by the tests)

RES, CLASSES = 16, 4
LABELS = [f"c{i}" for i in range(CLASSES)]
VARIANTS = ("float32", "dynamic_int8", "int8")
CACHE = default_cache_dir()
TFLITE_RUNTIME_VENV = CACHE / "venv-tflite-runtime-2.14.0-numpy1"
TFLITE_RUNTIME_REQUIREMENTS = ["numpy<2", "tflite-runtime==2.14.0"]


def export_build(root: Path, model, labels: list, p, train, calibration, test, variants,
                 calibration_size: int = 64) -> SimpleNamespace:
    """``model`` (a trained Keras model taking ``p``'s input) through the real quantize and export
    stages into ``root``: <variant>.tflite with their metadata, eval_pack.npz, manifest.json."""
    from export import bundle
    from export.config import ExportConfig
    from imagedata.dataset import Dataset
    from quantize import convert
    from quantize.config import QuantizeConfig
    from tests.quantize import tiny

    src = tiny.write_source(root / "src", model, config=tiny.CFG.replace(resolution=p.resolution),
                            labels=labels, preprocessing=p)
    ds = Dataset(list(labels), train, test.take(0), calibration, test, p, {"name": "test data"})
    convert.run(QuantizeConfig(variants=variants, calibration_size=calibration_size), src, root / "quantize",
                dataset=ds)
    manifest = bundle.run(ExportConfig(), root / "quantize", root, dataset=ds)
    return SimpleNamespace(root=root, x=test.x, y=test.y, labels=list(labels), manifest=manifest,
                           models=[root / f"{n}.tflite" for n in variants])


@pytest.fixture(scope="session")
def bench_build(tmp_path_factory):
    """A build/ folder as export leaves it, in seconds: float32, dynamic_int8 and int8 .tflite
    (with their metadata) of a small CNN trained on the blob task, eval_pack.npz and manifest.json."""
    import keras
    from keras import layers

    from imagedata.dataset import Split
    from imagedata.preprocess import Preprocessing

    root = tmp_path_factory.mktemp("build")
    p = Preprocessing(resolution=RES, channels=1)
    x, y = make_blobs(600, RES, 1, CLASSES, seed=11)
    train, test = slice(0, 400), slice(400, 600)
    keras.utils.set_random_seed(0)
    inp = keras.Input((RES, RES, 1))
    h = layers.Conv2D(8, 3, strides=2, activation="relu", name="conv_1")(inp)
    h = layers.DepthwiseConv2D(3, activation="relu", name="block_1_depthwise")(h)
    h = layers.Conv2D(16, 1, activation="relu", name="block_1_project")(h)
    out = layers.Dense(CLASSES, activation="softmax")(layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(p.normalize(x[train]), y[train], epochs=8, batch_size=32, verbose=0)
    return export_build(root, model, LABELS, p, Split(x[train], y[train]), Split(x[train][:64], y[train][:64]),
                        Split(x[test], y[test]), VARIANTS)


def with_op_version(model: bytes, version: int = 99) -> bytes:
    """The model with every stored operator version set to ``version``: what a runtime older
    than the converter sees ("Didn't find op for builtin opcode ... version '99'")."""
    from android_bench.device.tflite_metadata import _Flatbuffer, _model_root
    fb = _Flatbuffer(model)
    data, patched = bytearray(model), 0
    for code in fb.tables(fb.field(_model_root(fb), 1)):   # Model.operator_codes
        pos = fb.field(code, 2)                            # OperatorCode.version, int32
        if pos is not None:
            struct.pack_into("<i", data, pos, version)
            patched += 1
    if not patched:
        raise ValueError("no operator stores its version explicitly")
    return bytes(data)


def shadow_runtimes(folder: Path) -> Path:
    """A folder that, first on PYTHONPATH, makes the three runtimes fail to import."""
    for name in ("ai_edge_litert", "tflite_runtime", "tensorflow"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError({f'No module named {name!r}'!r}, name={name!r})\n")
    return folder


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """Debian's OpenSSH server on 127.0.0.1:<free port>, throwaway host and user keys, key login only.

    Yields .spec (ssh://user@127.0.0.1:port) and .options (ssh arguments with the key and
    a private known_hosts). Stopped at the end of the session."""
    exe = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.isfile(exe):
        pytest.skip("no sshd: apt-get install openssh-server (.ci/run does)")
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "android_bench test",
                        "-f", str(d / key)], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    user = os.environ.get("USER") or __import__("getpass").getuser()
    port = free_port()
    (d / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
PidFile {d / 'sshd.pid'}
AuthorizedKeysFile {d / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowUsers {user}
AcceptEnv TMPDIR
LogLevel ERROR
""")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege separation directory
    log = open(d / "sshd.log", "wb")
    proc = subprocess.Popen([exe, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=log)
    options = ("-F", "/dev/null", "-i", str(d / "user_key"), "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={d / 'known_hosts'}", "-o", "StrictHostKeyChecking=accept-new")
    probe = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p", str(port), *options,
             f"{user}@127.0.0.1", "true"]
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            log.close()
            pytest.fail(f"sshd exited {proc.returncode}: {(d / 'sshd.log').read_text()[-2000:]}")
        if subprocess.run(probe, capture_output=True).returncode == 0:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"sshd did not accept a key login within 20 s: {(d / 'sshd.log').read_text()[-2000:]}")
        time.sleep(0.2)
    yield SimpleNamespace(spec=f"ssh://{user}@127.0.0.1:{port}", options=options, port=port, user=user,
                          folder=d)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def cached_venv(folder: Path, requirements: list[str], probe_code: str, base: str | None = None) -> Path:
    """The Python of a venv with only ``requirements``, built once under ~/.cache/mobilenet-deploy
    and reused while ``probe_code`` still runs in it; skips when PyPI is unreachable."""
    python = folder / "bin" / "python"
    ready = folder / ".ready"
    probe = [str(python), "-c", probe_code]
    if ready.is_file() and python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    if not online("pypi.org", timeout=5):
        pytest.skip(f"building the venv {folder.name} needs PyPI, which is unreachable")
    shutil.rmtree(folder, ignore_errors=True)
    # tflite-runtime 2.14 has wheels up to Python 3.11
    base = base or shutil.which("python3.11") or sys.executable
    subprocess.run([base, "-m", "venv", str(folder)], check=True, capture_output=True)
    r = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *requirements], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.fail(f"pip install {' '.join(requirements)} failed: {r.stderr[-2000:]}")
    subprocess.run(probe, check=True, capture_output=True)
    ready.write_text(" ".join(requirements) + "\n")
    return python


@pytest.fixture(scope="session")
def tflite_runtime_python():
    """A venv with only numpy<2 and tflite-runtime 2.14.0 (Raspberry Pi OS Bookworm's stack)."""
    return cached_venv(TFLITE_RUNTIME_VENV, TFLITE_RUNTIME_REQUIREMENTS,
                       "import numpy, tflite_runtime; print(numpy.__version__, tflite_runtime.__version__)")


@pytest.fixture(scope="session")
def pi_emu_root():
    """The emulated Pi's bookworm root file system, built on first use and reused afterwards."""
    from android_bench import pi_emu
    try:
        pi_emu.check_host()
    except pi_emu.CannotEmulate as e:
        pytest.skip(f"this machine cannot emulate arm64: {e}")
    stamp = pi_emu.build(pi_emu.BOOKWORM)
    return SimpleNamespace(root=pi_emu.ROOTFS, stamp=stamp)
