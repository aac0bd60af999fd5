"""Class 1 of issue 13: a stage publishes its outputs as one set, and one writer holds OUT.

quantize and export run as real processes, SIGKILLed at chosen points (the test hook of
pipeline.publish), and two writers are started at once. Afterwards OUT holds the old complete
set or the new one, never a mix (every file's sha256 against the record), or, for export
killed while renaming its files into OUT, no manifest at all, which every consumer reports as
an interrupted export to redo with make export.
"""
from __future__ import annotations

import json
import signal
import subprocess

import pytest

from pipeline import publish

from tests.robustness.conftest import cli, export_args, no_leftovers, one_error, published, quantize_args
from tests.train import procs

OTHER = ("--license", "Other-1.0")   # another license: every .tflite of the new set differs


def killed(args, hook):
    r = procs.run(args, hook=f"{hook}:kill")
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    assert f"test hook: {hook}:kill" in r.stdout
    return r


@pytest.mark.slow
@pytest.mark.parametrize("hook", ["export-staged:0", "export-file:1", "export-file:3", "export-published:0"])
def test_export_killed_leaves_the_old_set_the_new_set_or_no_manifest(built, out, hook):
    old = published(out, "manifest.json")
    killed(export_args(out, built.data, *OTHER), hook)
    if hook == "export-staged:0":            # nothing renamed yet: the old set, complete
        assert published(out, "manifest.json") == old
        code, text = cli("export", "table", out / "manifest.json")
        assert code == 0 and "| float32 |" in text, text
    elif hook == "export-published:0":       # the manifest renamed in: the new set, complete
        new = published(out, "manifest.json")
        assert all(new[f] != old[f] for f in ("float32.tflite", "dynamic_int8.tflite"))
    else:                                    # part renamed: no manifest, and every consumer says so
        assert not (out / "manifest.json").exists()
        for args in (("export", "table", out / "manifest.json"),
                     ("android_bench", "run", "--no-accuracy", "--out", out / "bench", out / "manifest.json"),
                     ("android_bench", "run", "--no-accuracy", "--out", out / "bench", out / "float32.tflite")):
            one_error(*cli(*args), "interrupted while publishing", "make export")
        assert not (out / "bench").exists()
        r = procs.run(export_args(out, built.data, *OTHER))   # the command the message names
        assert r.returncode == 0, r.stdout + r.stderr
        new = published(out, "manifest.json")
        assert all(new[f] != old[f] for f in ("float32.tflite", "dynamic_int8.tflite"))
        no_leftovers(out)


@pytest.mark.slow
@pytest.mark.parametrize("hook", ["quantize-variant:1", "quantize-published:0"])
def test_quantize_killed_leaves_the_old_set_or_the_new_set(built, out, hook):
    old = published(out / "quantize", "quantize.json")
    killed(quantize_args(built.model_b, out), hook)
    now = published(out / "quantize", "quantize.json")
    if hook == "quantize-variant:1":          # killed while staging: the old set, and export uses it
        assert now == old
        r = procs.run(export_args(out, built.data))
        assert r.returncode == 0, r.stdout + r.stderr
    else:                                     # killed right after the swap: the new set
        assert now.keys() == old.keys() and all(now[f] != old[f] for f in now)
    no_leftovers(out / "quantize")


@pytest.mark.slow
def test_a_second_writer_is_told_who_holds_out(built, out):
    old = published(out, "manifest.json")
    first = procs.start(export_args(out, built.data, *OTHER), hook="export-staged:0:pause")
    try:
        procs.wait_for_line(first, "test hook: export-staged:0:pause", timeout=300)
        one_error(*cli("export", "run", "--out", out, "--data", built.data),
                  f"'{out}' is in use by pid {first.pid} since ")
        one_error(*cli("quantize", "--model", built.model_b, "--out", out / "quantize", "--variants", "float32"),
                  f"'{out}' is in use by pid {first.pid} since ")
    finally:
        first.kill()
        first.wait()
    assert published(out, "manifest.json") == old       # the holder was killed before publishing
    r = procs.run(export_args(out, built.data))
    assert r.returncode == 0, r.stdout + r.stderr
    published(out, "manifest.json")
    no_leftovers(out)


@pytest.mark.slow
def test_two_exports_at_once_leave_one_complete_set(built, out):
    runs = [procs.start(export_args(out, built.data, "--license", name)) for name in ("A-1.0", "B-1.0")]
    results = [(p.wait(timeout=600), p.stdout.read()) for p in runs]
    assert any(code == 0 for code, _ in results), results
    for code, text in results:
        if code != 0:
            one_error(code, text, "is in use by pid")
    published(out, "manifest.json")
    no_leftovers(out)


@pytest.mark.slow
def test_export_into_a_folder_of_its_own_and_a_record_of_another_shape(built, tmp_path):
    """publish_files' stale-file rule: a variant the new set no longer has is removed after the swap."""
    out = tmp_path / "build"
    subprocess.run(["cp", "-r", str(built.base), str(out)], check=True)
    (out / "int8.tflite").write_bytes(b"from an older set")
    doc = json.loads((out / "manifest.json").read_text())
    doc["variants"].append({"name": "int8", "file": "int8.tflite", "size_bytes": 17, "sha256": "0" * 64})
    (out / "manifest.json").write_text(json.dumps(doc))
    r = procs.run(export_args(out, built.data))
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (out / "int8.tflite").exists()
    assert set(published(out, "manifest.json")) == {"float32.tflite", "dynamic_int8.tflite", "eval_pack.npz"}


def _set(folder, name):
    """A set of two files and its record, written into a staging folder."""
    (folder / "a.tflite").write_text(f"a of {name}")
    (folder / "b.tflite").write_text(f"b of {name}")
    (folder / "quantize.json").write_text(json.dumps({"variants": [{"file": "a.tflite"}, {"file": "b.tflite"}],
                                                      "name": name}))


def test_a_folder_of_its_own_is_swapped_and_a_shared_one_keeps_its_other_files(tmp_path):
    q = tmp_path / "quantize"
    for name in ("old", "new"):
        with publish.staged(q, "quantize.json", folder=True) as stage:
            _set(stage, name)
    assert json.loads((q / "quantize.json").read_text())["name"] == "new"
    assert (q / "a.tflite").read_text() == "a of new"
    (q / "notes.txt").write_text("mine")                  # not the set's: the files are renamed in instead
    with publish.staged(q, "quantize.json", folder=True) as stage:
        _set(stage, "third")
        (stage / "b.tflite").unlink()                     # the new set has no b: the old b goes
        (stage / "quantize.json").write_text(json.dumps({"variants": [{"file": "a.tflite"}], "name": "third"}))
    assert (q / "notes.txt").read_text() == "mine" and not (q / "b.tflite").exists()
    assert (q / "a.tflite").read_text() == "a of third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quantize"]


def test_a_failed_block_publishes_nothing_and_leaves_no_staging_folder(tmp_path):
    q = tmp_path / "quantize"
    with publish.staged(q, "quantize.json", folder=True) as stage:
        _set(stage, "old")
    with pytest.raises(KeyboardInterrupt):
        with publish.staged(q, "quantize.json", folder=True) as stage:
            (stage / "a.tflite").write_text("half")
            raise KeyboardInterrupt
    with pytest.raises(publish.PublishError, match="was not written"):
        with publish.staged(q, "quantize.json", folder=True) as stage:
            (stage / "a.tflite").write_text("no record")
    assert (q / "a.tflite").read_text() == "a of old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quantize"]
