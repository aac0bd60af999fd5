"""The host side against a real OpenSSH server on 127.0.0.1, and the messages when a target cannot run."""
from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from android_bench import bench
from android_bench.config import BenchConfig
from android_bench.device.measure import Protocol
from android_bench.targets import LocalTarget, SshTarget, TargetError, parse_target
from tests.android_bench.conftest import free_port, shadow_runtimes

QUICK = BenchConfig(threads=(1,), protocol=Protocol(warmup_runs=1, warmup_seconds=0, runs=5, min_seconds=0))


def test_parse_target(monkeypatch, tmp_path):
    assert parse_target("local") == LocalTarget(python=sys.executable)
    monkeypatch.chdir(tmp_path)   # the runner runs in a temporary folder: a relative path is made absolute
    assert parse_target("local", ".venv/bin/python").python == str(tmp_path / ".venv/bin/python")
    assert parse_target("local", "python3").python == "python3"
    t = parse_target("ssh://pi@raspberrypi.local:2222", None, ["-i", "k"])
    assert (t.user, t.host, t.port, t.python, t.options) == ("pi", "raspberrypi.local", 2222, "python3", ("-i", "k"))
    assert t.command("true")[-2:] == ["pi@raspberrypi.local", "true"] and "BatchMode=yes" in t.command("x")
    assert parse_target("ssh://10.0.0.7").login == "10.0.0.7" and parse_target("ssh://[::1]:22").host == "::1"
    assert t.slug() == "ssh_pi@raspberrypi.local_2222"
    for bad in ("pi@host", "ssh://", "ssh://a@b:c", "http://host"):
        with pytest.raises(TargetError, match="target must be 'local', 'ssh://"):
            parse_target(bad)
    with pytest.raises(TargetError, match="ssh port must be 1-65535, got 70000"):
        parse_target("ssh://h:70000")


def test_ssh_target_copies_runs_fetches_and_cleans_up(sshd, bench_build, tmp_path):
    remote_tmp = tmp_path / "remote-tmp"     # the target's TMPDIR, of this test's own (sshd AcceptEnv)
    remote_tmp.mkdir()
    target = parse_target(sshd.spec, sys.executable, (*sshd.options, "-o", f"SetEnv=TMPDIR={remote_tmp}"))
    assert target.shell('echo "$TMPDIR"').stdout.decode().strip() == str(remote_tmp)
    lines = []
    result = bench.run(QUICK, target, [bench_build.root / "manifest.json"], bench_build.root / "eval_pack.npz",
                       tmp_path / "bench", on_line=lines.append)
    assert result.failed == [] and result.path == tmp_path / "bench/results" / \
        f"ssh_{sshd.user}@127.0.0.1_{sshd.port}__ai_edge_litert.json"
    doc = json.loads(result.path.read_text())
    assert doc["target"] == sshd.spec and doc["host"]["python"] == sys.executable
    rows = doc["results"]
    assert [r["variant"] for r in rows] == ["float32", "dynamic_int8", "int8"]
    assert all(r["target"] == sshd.spec and r["error"] is None and r["median_ms"] > 0 for r in rows)
    assert all(r["sha256"] == doc["host"]["models"][r["file"]]["sha256"] for r in rows)   # copied intact
    assert min(r["top1"] for r in rows) > 0.9 and rows[0]["agreement"] == 1.0
    assert any(ln.startswith("[6/6] int8 threads=1 xnnpack=on: median") for ln in lines)
    assert any("Python 3." in ln and "ai_edge_litert 2." in ln for ln in lines)
    assert list(remote_tmp.iterdir()) == []     # the temporary folder on the target is gone


def test_ssh_target_measures_mediapipe_classify(sshd, bench_build, tmp_path):
    """App-level latency over ssh: MediaPipe Tasks on the target (here the test venv's)."""
    target = parse_target(sshd.spec, sys.executable, sshd.options)
    result = bench.run(dataclasses.replace(QUICK, runtime="mediapipe"), target, bench_build.models[2:],
                       bench_build.root / "eval_pack.npz", tmp_path / "bench", optional=True)
    assert result.skipped is None and result.failed == []
    assert result.path.name == f"ssh_{sshd.user}@127.0.0.1_{sshd.port}__mediapipe.json"
    row, = result.doc["results"]
    assert (row["variant"], row["runtime"], row["threads"], row["error"]) == ("int8", "mediapipe", 1, None)
    assert row["median_ms"] > 0 and row["top1"] > 0.9 and row["target"] == sshd.spec


def test_unreachable_host_says_so(bench_build, tmp_path):
    target = SshTarget(spec="ssh://nobody@127.0.0.1", python="python3", user="nobody", host="127.0.0.1",
                       port=free_port(), options=("-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
                                                  "-o", f"UserKnownHostsFile={tmp_path / 'kh'}"))
    with pytest.raises(TargetError, match=r"cannot log in to nobody@127.0.0.1 \(port \d+\) over ssh: .*"
                                          r"Connection refused.*ssh-copy-id -p \d+ nobody@127.0.0.1"):
        bench.run(QUICK, target, bench_build.models[:1], None, tmp_path)


def test_missing_python_says_what_to_install(sshd, bench_build, tmp_path):
    target = parse_target(sshd.spec, "/nonexistent/python3", sshd.options)
    with pytest.raises(TargetError, match=r"/nonexistent/python3 was not found on .*: install Python 3.9 or newer"):
        bench.run(QUICK, target, bench_build.models[:1], None, tmp_path)


def test_no_runtime_on_the_target_says_what_to_install(sshd, bench_build, tmp_path):
    shadow = shadow_runtimes(tmp_path / "shadow")
    wrapper = tmp_path / "python-without-runtime"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={shadow} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    target = parse_target(sshd.spec, str(wrapper), sshd.options)
    with pytest.raises(TargetError, match=r"no TFLite interpreter .*pip install ai-edge-litert.*"
                                          r"pip install tflite-runtime 'numpy<2'"):
        bench.run(QUICK, target, bench_build.models[:1], None, tmp_path)
    assert not (tmp_path / "results").exists()


def test_local_target_keeps_going_past_a_broken_variant(bench_build, tmp_path):
    from tests.android_bench.conftest import with_op_version
    models = tmp_path / "models"
    models.mkdir()
    for m in bench_build.models[::2]:
        (models / m.name).write_bytes(m.read_bytes())
    (models / "int16x8.tflite").write_bytes(with_op_version(bench_build.models[-1].read_bytes()))
    result = bench.run(QUICK, LocalTarget(), sorted(models.glob("*.tflite")), bench_build.root / "eval_pack.npz",
                       tmp_path / "bench")
    assert result.failed == ["int16x8"]
    rows = {r["variant"]: r for r in result.doc["results"]}
    assert rows["int8"]["error"] is None and rows["int8"]["agreement"] > 0.9
    assert "Didn't find op for builtin opcode" in rows["int16x8"]["error"]


def test_an_unknown_or_changed_host_key_is_named_as_such(sshd, bench_build, tmp_path):
    """Real sshd, real known_hosts files: ssh refuses the host before any login, which is not a missing key."""
    base = ("-F", "/dev/null", "-i", str(sshd.folder / "user_key"), "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=yes")
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    target = parse_target(sshd.spec, sys.executable, (*base, "-o", f"UserKnownHostsFile={empty}"))
    with pytest.raises(TargetError) as e:
        bench.run(QUICK, target, bench_build.models[:1], None, tmp_path)
    message = str(e.value)
    assert f"the host key of {sshd.user}@127.0.0.1 (port {sshd.port}) is not known here" in message
    assert "StrictHostKeyChecking=accept-new" in message and "ssh-copy-id" not in message

    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    changed = tmp_path / "known_hosts_changed"
    changed.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(Path(f'{other}.pub').read_text().split()[:2])}\n")
    target = parse_target(sshd.spec, sys.executable, (*base, "-o", f"UserKnownHostsFile={changed}"))
    with pytest.raises(TargetError) as e:
        bench.run(QUICK, target, bench_build.models[:1], None, tmp_path)
    message = str(e.value)
    assert "has CHANGED since known_hosts recorded it" in message
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}'" in message and "ssh-copy-id" not in message
    assert not (tmp_path / "results").exists()
