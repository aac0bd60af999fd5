"""What a user can do wrong with a data folder ends as one 'Error:' line and exit 1, never a traceback."""
import subprocess
import sys

from tests.conftest import ROOT
from tests.imagedata.test_image_modes import BAD


def fit(*args):
    return subprocess.run([sys.executable, "-m", "train", "fit", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_one_class_fails_before_tensorflow_loads(image_folder, tmp_path):
    r = fit("--data", str(image_folder(classes=("cat",))), "--out", str(tmp_path / "out"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "Error: data dir" in r.stderr and "has one class folder, 'cat': a classifier needs at least 2" in r.stderr


def test_decompression_bomb_names_the_file(image_folder, tmp_path):
    root = image_folder(per_class=8)
    (root / "dog" / "bomb.png").write_bytes(BAD["bomb.png"][0])
    r = fit("--data", str(root), "--out", str(tmp_path / "out"), "--resolution", "32", "--epochs", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"Error: cannot read image '{root / 'dog' / 'bomb.png'}': too large: " in r.stderr
    assert "pass --skip-bad-images" in r.stderr
