"""tf.distribute as it runs for real: two logical CPU devices, and two worker processes on 127.0.0.1.

The one-device reference trains at the same global batch (32) and peak learning rate
(6e-3) as the distributed runs (16 per replica x 2 replicas, 3e-3 x 2). They differ only
in BatchNorm's batch statistics, computed per replica over 16 images instead of 32.
"""
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.train import procs

pytestmark = pytest.mark.slow

EPOCHS = ["--epochs", "2"]
PER_REPLICA = procs.PER_REPLICA_OF_TWO


def _weights(path):
    import keras
    return keras.models.load_model(path).get_weights()


def _close_to(record, reference):
    """Within noise: the same task learnt as well, and training losses within 15%."""
    assert record["test_top1"] > 0.85 and reference["test_top1"] > 0.85, (record["history"], reference["history"])
    for h, r in zip(record["history"], reference["history"], strict=True):
        assert h["loss"] == pytest.approx(r["loss"], rel=0.15), (record["history"], reference["history"])


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, blob_folder):
    out = tmp_path_factory.mktemp("one-device")
    r = procs.run(procs.fit_args(blob_folder, out, *EPOCHS, *procs.ONE_DEVICE))
    assert r.returncode == 0, r.stdout + r.stderr
    return procs.model_json(out)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, blob_folder):
    """Two worker processes, the same command with the same --out; worker 0 is the chief."""
    out = tmp_path_factory.mktemp("two-workers")
    args = procs.fit_args(blob_folder, out, *EPOCHS, *PER_REPLICA, "--strategy", "multi-worker")
    results = procs.run_cluster(lambda i: args, procs.cluster(2))
    return out, results


def test_two_workers_train_like_one_device_and_only_the_chief_writes(two_workers, one_device):
    out, [(chief_rc, chief), (worker_rc, worker)] = two_workers
    assert chief_rc == 0 and worker_rc == 0, chief + worker
    assert "Traceback" not in chief + worker
    assert "this worker's part is done; the chief writes the model" in worker
    record = procs.model_json(out)
    assert record["distribution"]["workers"] == 2 and record["distribution"]["replicas"] == 2
    assert record["distribution"]["global_batch"] == 32 and record["distribution"]["peak_learning_rate"] == 6e-3
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    _close_to(record, one_device)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "model.json", "model.keras", "train"]
    assert sorted(p.name for p in (out / "train").iterdir()) == ["best.keras", "last.keras", "state.json"]


def test_a_worker_killed_after_epoch_1_is_restarted_and_the_run_finishes(tmp_path, blob_folder, two_workers):
    """The engine's way: the chief stops when a peer stops; restarting every task continues
    after the last finished epoch, and ends where the uninterrupted cluster ended."""
    args = procs.fit_args(blob_folder, tmp_path, *EPOCHS, *PER_REPLICA, "--strategy", "multi-worker")
    configs = procs.cluster(2)
    [(chief_rc, chief), (worker_rc, worker)] = procs.run_cluster(
        lambda i: args, configs, hooks=[None, "epoch-start:2:kill"])
    assert worker_rc == -signal.SIGKILL, worker
    assert chief_rc == 1 and "Traceback" not in chief, chief
    assert "the cluster lost a task" in chief and "Restart every task with the same command" in chief
    assert f"the last finished epoch (1 of 2) is in {tmp_path / 'train' / 'last.keras'}" in chief

    results = procs.run_cluster(lambda i: args, configs)   # the same commands, no --resume
    assert [rc for rc, _ in results] == [0, 0], results
    assert "resuming after epoch 1 of 2" in results[0][1]
    record = procs.model_json(tmp_path)
    assert [h["epoch"] for h in record["history"]] == [1, 2] and record["resumed_after_epochs"] == [1]
    reference, _ = two_workers
    same = [np.array_equal(a, b) for a, b in zip(_weights(tmp_path / "model.keras"),
                                                 _weights(reference / "model.keras"))]
    assert all(same)


def test_mirrored_over_two_logical_cpu_devices(tmp_path, blob_folder, one_device):
    args = procs.fit_args(blob_folder, tmp_path, *EPOCHS, *PER_REPLICA, "--strategy", "mirrored")[3:]
    script = ("import sys, tensorflow as tf\n"
              "cpu = tf.config.list_physical_devices('CPU')[0]\n"
              "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
              "from train.__main__ import cli\n"
              "cli(sys.argv[1:])\n")
    r = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=900, env=procs.env())
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    record = procs.model_json(tmp_path)
    dist = record["distribution"]
    assert dist["strategy"] == "mirrored" and dist["replicas"] == 2 and len(dist["devices"]) == 2
    assert dist["global_batch"] == 32
    _close_to(record, one_device)
