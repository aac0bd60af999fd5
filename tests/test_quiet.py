"""Quiet, true output: no library banners in normal runs (-v brings them back), progress bars only
on a terminal, one line per stage in a log, no line twice, "1 model"."""
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import quiet

ROOT = Path(__file__).resolve().parents[1]
# As TensorFlow 2.21, its converter and ai-edge-litert 2.3 print them on this project's machine.
BANNERS = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796115882.557251   15118 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "W0000 00:00:1796115890.000001   15118 tf_tfl_flatbuffer_helpers.cc:365] Ignored output_format.",
    "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]
KEPT = ["E0000 00:00:1796115890.000001   15118 model.cc:1] Error: the real kind", "error: no such file: x.tflite",
        "converting ...", "\rcalibrating:  50%|#####     | 4/8", "INFO: something a user asked for"]


def test_banners_are_told_from_other_lines():
    assert all(quiet.is_banner(line) for line in BANNERS)
    assert not any(quiet.is_banner(line) for line in KEPT)
    assert quiet.count(1, "model") == "1 model" and quiet.count(2, "model") == "2 models"


CHILD = r"""
import os, subprocess, sys, time
from pipeline import quiet
quiet.install(verbose=sys.argv[1] == "-v")
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
os.write(2, b"fully_quantize: 0")                      # a C++ stream writes a line in pieces
time.sleep(0.01)
os.write(2, b", inference_type: 6, input_inference_type: INT8, output_inference_type: INT8\n")
os.write(2, b"E0000 00:00:1796115890.000001   15118 model.cc:1] Error: kept\n")
subprocess.run(["sh", "-c", "echo 'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.' >&2; echo child >&2"])
print("python", file=sys.stderr)
with quiet.progress(total=3, desc="converting", unit="variant") as bar:
    bar.update(3)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_the_filter_works_on_file_descriptor_2_and_in_children(verbose):
    r = subprocess.run([sys.executable, "-c", CHILD, "-v" if verbose else "-"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    kept = ["E0000 00:00:1796115890.000001   15118 model.cc:1] Error: kept", "child", "python", "converting ..."]
    if verbose:
        assert sum(quiet.is_banner(ln) for ln in lines) == 3 and all(k in lines for k in kept), lines
    else:
        # What C++ and the child write passes through the filter's thread; what Python writes goes to
        # the descriptor directly: each keeps its order, the two interleave as the threads run.
        through_filter, direct = kept[:2], kept[2:]
        assert [ln for ln in lines if ln in through_filter] == through_filter, lines
        rest = [ln for ln in lines if ln not in through_filter]
        assert rest[:2] == direct and len(rest) == 3, lines
        assert rest[2].startswith("converting: 3 variants in ") and len(lines) == 5   # no bar: not a terminal
    assert "\r" not in r.stderr


@pytest.mark.slow
def test_quantize_in_a_log_prints_no_banner_and_no_bar(tmp_path):
    from tests.quantize import tiny
    folder = tiny.blob_folder(tmp_path / "imgs", per_class=20)
    src = tiny.write_source(tmp_path / "src", tiny.untrained(), config=tiny.CFG.replace(data=str(folder)))

    r = subprocess.run([sys.executable, "-m", "quantize", "--model", str(src), "--out", str(tmp_path / "q"),
                        "--variants", "float32,int8", "--calibration-size", "8"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not [ln for ln in r.stderr.splitlines() if quiet.is_banner(ln)], r.stderr
    assert "\r" not in r.stderr and "converting ..." in r.stderr and "converting: 2 variants in " in r.stderr
    assert r.stdout.count("wrote ") == 1
    # -v keeps the banners: test_the_filter_works_on_file_descriptor_2_and_in_children, without a conversion


def test_a_log_gets_a_line_at_each_end_whatever_tqdm_calls_are_made(capsys):
    with quiet.LogProgress(total=4, desc="candidates", unit="layer") as bar:
        bar.set_postfix(drop="0.3 pt")
        bar.set_postfix_str("conv2")
        bar.set_description("candidates")
        bar.update(4)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "candidates ..." and lines[1].startswith("candidates: 4 layers in ") and len(lines) == 2
