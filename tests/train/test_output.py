"""What `train fit` prints: TensorFlow's banners only with -v."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.train import procs

BANNERS = ("oneDNN custom operations", "absl::InitializeLog", "This TensorFlow binary is optimized")


@pytest.mark.slow   # two TensorFlow start-ups
def test_tensorflow_banners_only_with_verbose(tmp_path, image_folder):
    # A batch larger than the data stops the run right after TensorFlow has started.
    args = [sys.executable, "-m", "train", "fit", "--data", str(image_folder()), "--out", str(tmp_path / "o"),
            "--resolution", "32", "--batch-size", "1000"]
    quiet = subprocess.run(args, cwd=ROOT, env=procs.env(), capture_output=True, text=True, timeout=300)
    loud = subprocess.run([*args, "-v"], cwd=ROOT, env=procs.env(), capture_output=True, text=True, timeout=300)
    for r in (quiet, loud):
        assert r.returncode == 1 and "is larger than the training split" in r.stderr, r.stdout + r.stderr
    assert not [b for b in BANNERS if b in quiet.stdout + quiet.stderr], quiet.stderr
    assert [b for b in BANNERS if b in loud.stderr], loud.stderr
    said = [ln for ln in quiet.stderr.strip().splitlines() if not ln.startswith("data: ")]   # the decode's two lines
    assert len(said) == 1 and said[0].startswith("Error: "), quiet.stderr
