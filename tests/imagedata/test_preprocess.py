import numpy as np
import pytest

from imagedata.preprocess import Preprocessing, PreprocessingError


def test_normalize_range_and_round_trip():
    p = Preprocessing(resolution=32, channels=1)
    x = np.array([0, 127, 255], np.uint8).reshape(1, 1, 3, 1)
    np.testing.assert_allclose(p.normalize(x).ravel(), [-1.0, -0.5 / 127.5, 1.0], atol=1e-6)
    assert Preprocessing.from_dict(p.to_dict()) == p


def test_quantize_input_int8_matches_formula():
    p = Preprocessing(resolution=8, channels=1)
    x = np.resize(np.array([0, 64, 128, 255], np.uint8), (1, 8, 8, 1))
    scale, zp = 2 / 255, -1
    q = p.quantize_input(x, np.int8, scale, zp)
    v = ((x.astype(np.float64) - 127.5) / 127.5) / scale
    expected = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zp, -128, 127)
    np.testing.assert_array_equal(q, expected.astype(np.int8))
    assert q.dtype == np.int8 and q.min() == -128   # -1.0 / scale - 1 = -128.5 is clipped


@pytest.mark.parametrize("kw, msg", [({"resolution": 4, "channels": 1}, "resolution"),
                                      ({"resolution": 32, "channels": 2}, "channels"),
                                      ({"resolution": 32, "channels": 3, "std": 0}, "std"),
                                      ({"resolution": 32, "channels": 3, "interpolation": "lanczos"},
                                       "interpolation")])
def test_rejects_bad_values(kw, msg):
    with pytest.raises(PreprocessingError, match=msg):
        Preprocessing(**kw)


def test_int8_input_keeps_every_pixel_level():
    p = Preprocessing(resolution=16, channels=1)
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    q = p.quantize_input(x, np.int8, 2 / 255, -1)
    assert len(np.unique(q)) == 255   # 0 and 1 both clip to -128; the rest stay distinct
