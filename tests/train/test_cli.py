"""Bad input to `python -m train fit` fails fast, non-zero, with a message that names the problem."""
import pytest
from click.testing import CliRunner

from train.__main__ import cli


def _fit(*args):
    return CliRunner().invoke(cli, ["fit", *args])


@pytest.mark.parametrize("args, message", [
    (["--alpha", "0"], "alpha must be in (0, 4], got 0.0"),
    (["--resolution", "8"], "resolution must be an integer in [16, 1024], got 8"),
    (["--dropout", "1.5"], "dropout must be in [0, 1), got 1.5"),
    (["--epochs", "0"], "epochs and batch_size must be >= 1"),
    (["--weights", "imagenet", "--channels", "1"], "--weights imagenet needs 3 input channels"),
    (["--arch", "v3"], "'v3' is not one of 'v1', 'v2', 'v3-small', 'v3-large'"),
    (["--minimalistic"], "minimalistic (no squeeze-and-excite, no hard-swish, no 5x5 kernels) is a "
                         "MobileNet V3 variant: use it with arch v3-small or v3-large, got arch 'v1'"),
    (["--arch", "v3-small", "--weights", "imagenet", "--alpha", "0.5", "--channels", "3"],
     "keras.applications has MobileNet V3 ImageNet weights for alpha 0.75 and 1.0 only, got alpha=0.5"),
    (["--arch", "v3-large", "--minimalistic", "--weights", "imagenet", "--alpha", "0.75", "--channels", "3"],
     "minimalistic MobileNet V3 ImageNet weights for alpha 1.0 only"),
    (["--weights", "foo"], "weights must be none, imagenet or a .keras or .weights.h5 file, got 'foo'"),
    (["--translate", "16"], "translate must be an integer number of pixels in [0, resolution/2), got 16"),
    (["--strategy", "ring"], "'ring' is not one of 'auto', 'mirrored', 'multi-worker'"),
])
def test_bad_config(args, message):
    r = _fit(*args)
    assert r.exit_code != 0
    assert message in r.output


def test_missing_data_folder(tmp_path):
    r = _fit("--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert r.exit_code == 1
    assert f"data dir '{tmp_path / 'nope'}' does not exist" in r.output


def test_folder_without_classes(tmp_path):
    (tmp_path / "empty").mkdir()
    r = _fit("--data", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert r.exit_code == 1 and "has no class folders (expected" in r.output


def test_resume_without_checkpoint(tmp_path, image_folder):
    r = _fit("--data", str(image_folder()), "--out", str(tmp_path / "out"), "--resume",
             "--resolution", "32", "--epochs", "1", "--batch-size", "4")
    assert r.exit_code == 1 and "nothing to resume" in r.output


def test_batch_larger_than_the_training_split_touches_nothing(tmp_path, image_folder):
    out = tmp_path / "out"
    r = _fit("--data", str(image_folder()), "--out", str(out), "--resolution", "32", "--epochs", "1",
             "--batch-size", "64")
    assert r.exit_code == 1, r.output
    assert "the global batch (64 per replica x 1 replica = 64) is larger than the training split (" in r.output
    assert not out.exists()


def test_missing_weights_file_touches_nothing(tmp_path, image_folder):
    out = tmp_path / "out"
    r = _fit("--data", str(image_folder()), "--out", str(out), "--resolution", "32", "--batch-size", "4",
             "--weights", str(tmp_path / "earlier.keras"))
    assert r.exit_code == 1
    assert f"weights file '{tmp_path / 'earlier.keras'}' does not exist" in r.output
    assert not out.exists()


def test_multi_worker_needs_tf_config(tmp_path, image_folder, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    r = _fit("--data", str(image_folder()), "--out", str(tmp_path / "out"), "--strategy", "multi-worker")
    assert r.exit_code == 1 and "--strategy multi-worker needs TF_CONFIG" in r.output
