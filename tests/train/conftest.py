"""Fixtures of the training tests: a folder of tiny images that a CLI can train on by path."""
import pytest


@pytest.fixture(scope="session")
def blob_folder(tmp_path_factory):
    """DIR/c<k>/*.png, 4 classes of 100 grayscale 32x32 quadrant blobs (292 training images)."""
    from tests.quantize.tiny import blob_folder
    return blob_folder(tmp_path_factory.mktemp("blobs") / "data", per_class=100)
