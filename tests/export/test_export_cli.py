"""`python -m export` fails non-zero with a message that says what to do; the small pure helpers."""
import json

import numpy as np
from click.testing import CliRunner

from export import bundle
from export.__main__ import cli
from imagedata.dataset import Split


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_run_before_quantize(tmp_path):
    r = invoke("run", "--out", str(tmp_path))
    assert r.exit_code == 1
    assert f"'{tmp_path / 'quantize' / 'quantize.json'}' does not exist: quantize first" in r.output
    assert list(tmp_path.iterdir()) == []


def test_run_refuses_a_tflite_that_quantize_json_does_not_describe(tmp_path):
    q = tmp_path / "quantize"
    q.mkdir()
    (q / "int8.tflite").write_bytes(b"written by a later, interrupted run")
    (q / "quantize.json").write_text(json.dumps({"variants": [{"name": "int8", "file": "int8.tflite",
                                                              "sha256": "0" * 64}]}))
    r = invoke("run", "--out", str(tmp_path))
    assert r.exit_code == 1
    assert "int8.tflite' is missing or differs from the one quantize.json describes" in r.output
    assert "run quantize again" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quantize"]


def test_bad_eval_size(tmp_path):
    r = invoke("run", "--out", str(tmp_path), "--eval-size", "0")
    assert r.exit_code == 1
    assert "eval_size must be an integer >= 1 (or unset for the whole test split)" in r.output


def test_classify_a_file_that_is_not_a_tflite(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"PK\x03\x04 not a model")
    (tmp_path / "x.png").write_bytes(b"")
    r = invoke("classify", str(tmp_path / "m.tflite"), str(tmp_path / "x.png"))
    assert r.exit_code == 1 and "not a TFLite model: file identifier" in r.output


def test_eval_subset_is_seeded_and_spans_the_classes():
    y = np.repeat(np.arange(4), 10)          # a folder split: ordered by class
    x = np.zeros((40, 8, 8, 1), np.uint8)
    sub, how = bundle.eval_subset(Split(x, y), 12, seed=0)
    again, _ = bundle.eval_subset(Split(x, y), 12, seed=0)
    assert len(sub) == 12 and set(sub.y) == {0, 1, 2, 3} and np.array_equal(sub.y, again.y)
    assert how == "12 test images drawn with seed 0"
    whole, how = bundle.eval_subset(Split(x, y), None, seed=0)
    assert len(whole) == 40 and how == "the whole test split"


def test_table_reads_like_the_readme():
    v = lambda name, size, top1, agree: {"name": name, "size_bytes": size * 1024, "top1": top1,  # noqa: E731
                                         "agreement": agree, "size_vs_float32": size / 1600,
                                         "top1_vs_float32": top1 - 0.9}
    manifest = {"variants": [v("float32", 1600, 0.9, 1.0), v("int8", 464, 0.8975, 0.9881)],
                "evaluation": {"images": 10000, "runtime": {"name": "ai_edge_litert", "version": "2.3.0"},
                               "machine": {"cpu": "AMD EPYC"}}}
    lines = bundle.table(manifest).splitlines()
    assert lines[0] == "| variant | size | vs float32 | top-1 | change vs float32 | agreement |"
    assert lines[2] == "| float32 | 1600.0 KiB | 1.00x | 90.00% | +0.00 pt | 100.00% |"
    assert lines[3] == "| int8 | 464.0 KiB | 0.29x | 89.75% | -0.25 pt | 98.81% |"
    assert lines[-1] == "Top-1 on the 10000 test images, ai_edge_litert 2.3.0 on AMD EPYC."
