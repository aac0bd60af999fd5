"""Class 2 of issue 13: consumers check what they were handed against manifest.json first.

`export table`, `android_bench run` (a manifest, or .tflite files beside one) and the device
runner, as real processes, on a manifest that is empty, not an object, of another schema or
short of keys, on a replaced or cut .tflite, and on a cut, foreign or wrong eval pack: one
'Error:' line saying what differs and that make export rebuilds it, exit non-zero, and nothing
copied to the target (no results written).
"""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from tests.robustness.conftest import cli, one_error
from tests.train import procs

pytestmark = pytest.mark.slow


def bench(out, *models, accuracy=True):
    return cli("android_bench", "run", *([] if accuracy else ["--no-accuracy"]), "--runs", "1", "--min-seconds",
               "0", "--warmup-runs", "0", "--warmup-seconds", "0", "--threads", "1", "--runtime", "ai_edge_litert",
               "--out", out / "bench", *models)


def manifest_doc(out) -> dict:
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize("text, says", [
    ("", "it is empty"),
    ("{}", "no schema_version"),
    ("[]", "it holds a JSON list, not an object"),
    ('"variants"', "it holds a JSON str, not an object"),
    ('{"schema_version": 1, "variants": [', "it is not JSON"),
    ('{"schema_version": 7}', "schema_version 7; this version reads 1"),
    ('{"schema_version": 1, "variants": [{"name": "int8"}], "labels": [], "eval_pack": {}, "evaluation": {},'
     ' "model": {}}', "variant 0 has no file, size_bytes, sha256"),
    ('{"schema_version": 1, "variants": {}}', "lacks variants, labels, eval_pack, evaluation, model"),
])
def test_a_bad_manifest_is_one_line(out, text, says):
    (out / "manifest.json").write_text(text)
    runs = [lambda: cli("export", "table", out / "manifest.json"), lambda: bench(out, out / "manifest.json")]
    if not text.strip():   # a .tflite beside a manifest is checked through it too
        runs.append(lambda: bench(out, out / "float32.tflite", accuracy=False))
    for run in runs:
        one_error(*run(), str(out / "manifest.json"), says, "make export")
    assert not (out / "bench").exists()


def test_a_replaced_tflite_is_refused_before_the_benchmark(out):
    """The issue's probe: int8 replaced by another variant benchmarked as "int8" with exit 0."""
    shutil.copyfile(out / "dynamic_int8.tflite", out / "float32.tflite")
    for run in (lambda: cli("export", "table", out / "manifest.json"), lambda: bench(out, out / "manifest.json"),
                lambda: bench(out, out / "float32.tflite", accuracy=False)):
        one_error(*run(), f"'{out / 'float32.tflite'}' has", "bytes, manifest.json says", "make export")
    data = bytearray((out / "dynamic_int8.tflite").read_bytes())   # same size, one byte changed
    data[len(data) // 2] ^= 0xFF
    (out / "dynamic_int8.tflite").write_bytes(bytes(data))
    shutil.copyfile(out / "quantize" / "float32.tflite", out / "float32.tflite")   # not the exported one either
    one_error(*bench(out, out / "dynamic_int8.tflite", accuracy=False), "sha256", "it is not the file this manifest")
    assert not (out / "bench").exists()


@pytest.mark.parametrize("damage, says", [
    ("cut", "bytes, manifest.json says"),
    ("garbage", "bytes, manifest.json says"),
    ("no-y", "bytes, manifest.json says"),
])
def test_a_bad_eval_pack_beside_its_manifest(out, damage, says):
    pack = out / "eval_pack.npz"
    _damage(pack, damage)
    one_error(*bench(out, out / "manifest.json"), str(pack), says, "make export")
    assert not (out / "bench").exists()


@pytest.mark.parametrize("damage, says", [
    ("cut", "cannot be read (cut off, or not an .npz"),
    ("garbage", "cannot be read (cut off, or not an .npz"),
    ("no-y", "has no y array"),
    ("float-x", "x must be (N, H, W, C) uint8, got float32"),
    ("bad-y", "y must be class indices below 4"),
])
def test_a_bad_eval_pack_of_its_own_on_the_host_and_on_the_device(out, tmp_path, damage, says):
    pack = tmp_path / "pack.npz"
    shutil.copyfile(out / "eval_pack.npz", pack)
    _damage(pack, damage)
    one_error(*cli("android_bench", "run", "--eval-pack", pack, "--out", out / "bench", out / "manifest.json"),
              str(pack), says, "make export")
    assert not (out / "bench").exists()
    # the runner itself, as the target runs it: an 'error:' line and the usage exit code, no BadZipFile
    r = procs.run([sys.executable, "-m", "android_bench.device.runner", "--eval-pack", str(pack), "--runs", "1",
                   "--min-seconds", "0", "--out", str(tmp_path / "results.json"), str(out / "float32.tflite")])
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and f"error: eval pack '{pack}'" in r.stderr and says in r.stderr, r.stderr
    assert not (tmp_path / "results.json").exists()


def _damage(pack, how: str) -> None:
    if how == "cut":
        pack.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])
    elif how == "garbage":
        pack.write_bytes(b"this is not a zip file at all")
    else:
        with np.load(pack) as p:
            arrays = {k: p[k] for k in p.files}
        if how == "no-y":
            del arrays["y"]
        elif how == "float-x":
            arrays["x"] = arrays["x"].astype(np.float32)
        elif how == "bad-y":
            arrays["y"] = arrays["y"] + 10
        with open(pack, "wb") as f:
            np.savez(f, **arrays)


def test_a_good_set_still_benchmarks(out):
    code, text = bench(out, out / "manifest.json")
    assert code == 0, text
    assert "Traceback" not in text
    assert sorted(p.name for p in (out / "bench" / "results").iterdir()) == ["local__ai_edge_litert.json"]
