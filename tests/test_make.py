"""`make` compares settings by meaning and keeps the ones a build was made with.

`make -q` (is it up to date?) and `make -n` (what would run?) must tell the truth: nothing
changed, nothing to do; a changed knob redoes only the stages that depend on it; a knob not
given keeps the value recorded in the build, so `make bench` never silently undoes
`make export MAX_DROP=0.5`. The fast tests read records written here; the slow one runs the
real CLIs on a tiny image folder, one epoch, two variants.
"""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from export.config import ExportConfig
from quantize.config import QuantizeConfig
from tests.quantize import tiny
from train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"train": "-m train fit", "quantize": "-m quantize", "export": "-m export run",
          "bench": "-m android_bench run"}


def make(out: Path, stamp: Path, *args: str, timeout=1200) -> subprocess.CompletedProcess:
    # The venv running this test is the one make would use: a stamp of our own keeps make
    # from (re)installing it, whatever the state of .venv/.installed.
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), f"OUT={out}", f"STAMP={stamp}", *args],
                          capture_output=True, text=True, timeout=timeout)


def planned(r: subprocess.CompletedProcess) -> dict:
    """{stage: its command line} of what `make -n` would run."""
    return {stage: line for line in r.stdout.splitlines() for stage, cmd in STAGES.items() if cmd in line}


@pytest.fixture
def recorded(tmp_path):
    """OUT as a finished `make export MAX_DROP=0.5 CALIB=64` leaves it, as far as make can see:
    each stage's record with its config, written in pipeline order after the sources."""
    out, stamp = tmp_path / "build", tmp_path / "venv-installed"
    stamp.touch()
    (out / "quantize").mkdir(parents=True)
    records = {"model.json": TrainConfig(), "quantize/quantize.json": QuantizeConfig(max_drop=0.5, calibration_size=64),
               "manifest.json": ExportConfig()}
    for name, config in records.items():
        (out / name).write_text(json.dumps({"config": config.to_dict()}))
    (out / "model.keras").write_bytes(b"stands for the trained model")
    now = time.time()
    for i, name in enumerate(["model.json", "model.keras", "quantize/quantize.json", "manifest.json"]):
        os.utime(out / name, (now - 10 + i, now - 10 + i))   # in order, after the sources
    return out, stamp


def test_make_q_and_n_say_a_recorded_build_is_up_to_date(recorded):
    out, stamp = recorded
    assert make(out, stamp, "-q", "export").returncode == 0
    r = make(out, stamp, "-n", "export")
    assert r.returncode == 0 and planned(r) == {}, r.stdout
    # the defaults and the recorded values spelled out, in other spellings: the same settings
    same = ["ALPHA=0.50", "ARCH=v1", "RES=32", "EPOCHS=21", "DATA=fashion_mnist", "CALIB=64", "MAX_DROP=0.5",
            "VARIANTS=int16x8,int8,dynamic_int8,float16,float32"]
    assert make(out, stamp, "-q", "export", *same).returncode == 0
    r = make(out, stamp, "export", *same)
    assert r.returncode == 0 and "Nothing to be done for 'export'" in r.stdout, r.stdout + r.stderr
    assert not (out / "train").exists()


def test_a_downstream_target_keeps_the_recorded_settings(recorded):
    out, stamp = recorded
    r = make(out, stamp, "-n", "bench")
    assert r.returncode == 0, r.stderr
    assert set(planned(r)) == {"bench"}, r.stdout          # no re-quantizing without the budget
    assert r.stderr == ""


def test_a_changed_knob_redoes_its_stage_and_says_why(recorded):
    out, stamp = recorded
    r = make(out, stamp, "-n", "export", "CALIB=8")
    plan = planned(r)
    assert set(plan) == {"quantize", "export"}, r.stdout
    # the other recorded knobs persist: the budget stays
    assert "--calibration-size 8" in plan["quantize"] and "--max-drop 0.5" in plan["quantize"]
    assert f"the quantize stage is out of date: CALIB=8 (make command line), {out}/quantize/quantize.json has " \
           f"calibration_size 64" in r.stderr
    assert make(out, stamp, "-q", "export", "CALIB=8").returncode == 1

    r = make(out, stamp, "-n", "export", "MAX_DROP=")   # given empty: back to the default, no budget
    plan = planned(r)
    assert set(plan) == {"quantize", "export"} and "--max-drop" not in plan["quantize"], r.stdout
    assert "--calibration-size 64" in plan["quantize"]
    assert "MAX_DROP=unset (the default) (given empty: the default)" in r.stderr

    r = make(out, stamp, "-n", "bench", "ALPHA=0.35")
    plan = planned(r)
    assert set(plan) == {"train", "quantize", "export", "bench"}, r.stdout
    assert "--alpha 0.35" in plan["train"] and "--epochs 21" in plan["train"]
    assert "--max-drop 0.5" in plan["quantize"] and "--calibration-size 64" in plan["quantize"]


def test_minimalistic_is_a_switch_recorded_by_meaning(recorded):
    out, stamp = recorded
    r = make(out, stamp, "-n", "export", "ARCH=v3-small", "MINIMALISTIC=1")
    plan = planned(r)
    assert "--arch v3-small --minimalistic --alpha 0.5" in plan["train"], r.stdout
    assert make(out, stamp, "-q", "export", "MINIMALISTIC=0").returncode == 0   # off: the recorded default
    r = make(out, stamp, "-n", "export", "MINIMALISTIC=1")   # V1 has no minimalistic form
    assert r.returncode != 0 and "is a MobileNet V3 variant" in r.stderr
    r = make(out, stamp, "-n", "export", "ARCH=v3-small", "MINIMALISTIC=maybe")
    assert r.returncode != 0 and "MINIMALISTIC='maybe' (make command line): minimalistic must be 1 or 0" in r.stderr


def test_an_invalid_knob_stops_make_with_the_rule(recorded):
    out, stamp = recorded
    r = make(out, stamp, "-n", "export", "ALPHA=five")
    assert r.returncode != 0 and "ALPHA='five' (make command line): alpha must be a number" in r.stderr
    r = make(out, stamp, "-n", "export", "ALPHA=5")
    assert r.returncode != 0 and "alpha must be in (0, 4], got 5.0" in r.stderr
    r = make(out, stamp, "-n", "export", "VARIANTS=float32")   # the recorded budget needs int8
    assert r.returncode != 0 and "max_drop is a budget for the int8 variant" in r.stderr


def test_make_settings_names_where_each_knob_comes_from(recorded):
    out, stamp = recorded
    r = make(out, stamp, "settings", "ALPHA=0.35", "EVAL_SIZE=")
    assert r.returncode == 0, r.stderr
    rows = {ln.split()[0]: ln.split()[1:] for ln in r.stdout.splitlines()[1:-1]}
    assert rows["ALPHA"] == ["0.35", "make", "command", "line"]
    assert rows["MAX_DROP"] == ["0.5", str(out / "quantize/quantize.json")]
    assert rows["EVAL_SIZE"][0] == "-" and rows["ARCH"] == ["v1", str(out / "model.json")]


def test_make_bench_passes_the_ssh_key_and_options(tmp_path):
    stamp = tmp_path / "stamp"
    stamp.touch()
    r = make(tmp_path, stamp, "-n", "bench", f"-o{tmp_path}/manifest.json", "TARGET=ssh://pi@raspberrypi",
             "SSH_KEY=~/.ssh/pi", "SSH_OPTIONS=Port=2222 UserKnownHostsFile=/tmp/kh")
    assert r.returncode == 0, r.stderr
    assert (f"-m android_bench run --target ssh://pi@raspberrypi -i ~/.ssh/pi -o Port=2222 "
            f"-o UserKnownHostsFile=/tmp/kh --out {tmp_path}/bench" in " ".join(r.stdout.split()))


@pytest.mark.slow
def test_make_export_is_incremental(tmp_path):
    data = tiny.blob_folder(tmp_path / "imgs", per_class=60)
    out, stamp = tmp_path / "build", tmp_path / "venv-installed"
    stamp.touch()
    knobs = [f"DATA={data}", "EPOCHS=1", "VARIANTS=float32,int8"]

    def run(*args):
        r = make(out, stamp, *args)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return {stage for stage, cmd in STAGES.items() if cmd in r.stdout}, r

    ran, _ = run("export", *knobs)
    assert ran == {"train", "quantize", "export"}
    outputs = [out / f for f in ("model.keras", "model.json", "quantize/quantize.json", "float32.tflite",
                                 "int8.tflite", "labels.txt", "eval_pack.npz", "manifest.json")]
    before = {p: p.stat().st_mtime_ns for p in outputs}
    manifest = json.loads((out / "manifest.json").read_text())
    assert [v["name"] for v in manifest["variants"]] == ["float32", "int8"]

    # Nothing changed: make says so, and so do -q and -n, with the knobs or without (recorded).
    ran, r = run("export", *knobs)
    assert ran == set() and "Nothing to be done for 'export'" in r.stdout
    for given in (knobs, [], ["ALPHA=0.5", "VARIANTS=int8,float32"]):
        assert make(out, stamp, "-q", "export", *given).returncode == 0, given
        assert planned(make(out, stamp, "-n", "bench", *given)).keys() == {"bench"}, given
    assert {p: p.stat().st_mtime_ns for p in outputs} == before

    ran, _ = run("export", "CALIB=8")                    # a quantize knob: no retraining
    assert ran == {"quantize", "export"}
    assert (out / "model.keras").stat().st_mtime_ns == before[out / "model.keras"]
    recipe = json.loads((out / "quantize/quantize.json").read_text())
    assert recipe["calibration"]["images"] == 8 and recipe["config"]["variants"] == ["float32", "int8"]
    assert make(out, stamp, "-q", "export").returncode == 0     # CALIB=8 is now the build's setting

    r = make(out, stamp, "-n", "export", "ALPHA=0.35")         # a training knob: everything again
    plan = planned(r)
    assert set(plan) == {"train", "quantize", "export"}, r.stdout
    assert f"--data {data}" in plan["train"] and "--epochs 1" in plan["train"] and "--alpha 0.35" in plan["train"]
    assert "--calibration-size 8" in plan["quantize"] and "--variants float32,int8" in plan["quantize"]
    assert "ALPHA=0.35 (make command line)" in r.stderr and "has alpha 0.5" in r.stderr
    assert not list(out.rglob("*.partial*"))
