"""`make export` is incremental: nothing changed, nothing done; a changed knob redoes only what
depends on it. Runs the real CLIs on a tiny image folder, one epoch, two variants."""
import json
import subprocess
from pathlib import Path

import pytest

from tests.quantize import tiny

ROOT = Path(__file__).resolve().parents[2]
STAGES = {"train": "-m train fit", "quantize": "-m quantize", "export": "-m export run"}


@pytest.mark.slow
def test_make_export_is_incremental(tmp_path):
    data = tiny.blob_folder(tmp_path / "imgs", per_class=60)
    out = tmp_path / "build"
    # The venv running this test is the one make would use: a stamp of our own keeps make
    # from (re)installing it, whatever the state of .venv/.installed.
    stamp = tmp_path / "venv-installed"
    stamp.touch()
    base = ["make", "--no-print-directory", "-C", str(ROOT), "export", f"OUT={out}", f"DATA={data}",
            "EPOCHS=1", "VARIANTS=float32,int8", f"STAMP={stamp}"]

    def make(*knobs):
        r = subprocess.run(base + list(knobs), capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return {stage for stage, cmd in STAGES.items() if cmd in r.stdout}, r.stdout

    ran, _ = make()
    assert ran == {"train", "quantize", "export"}
    outputs = [out / f for f in ("model.keras", "quantize/quantize.json", "float32.tflite", "int8.tflite",
                                 "labels.txt", "eval_pack.npz", "manifest.json")]
    before = {p: p.stat().st_mtime_ns for p in outputs}
    manifest = json.loads((out / "manifest.json").read_text())
    assert [v["name"] for v in manifest["variants"]] == ["float32", "int8"]

    ran, stdout = make()
    assert ran == set() and stdout == ""           # not even a command echoed
    assert {p: p.stat().st_mtime_ns for p in outputs} == before

    ran, _ = make("CALIB=8")                       # a quantize knob: no retraining
    assert ran == {"quantize", "export"}
    assert (out / "model.keras").stat().st_mtime_ns == before[out / "model.keras"]
    assert json.loads((out / "quantize/quantize.json").read_text())["calibration"]["images"] == 8

    ran, _ = make("CALIB=8", "ALPHA=0.5")          # a training knob: everything again
    assert ran == {"train", "quantize", "export"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["config"]["alpha"] == 0.5
    assert not list(out.rglob("*.partial*"))
