"""QuantizeConfig validates on construction; atomic writes leave no half file behind."""
import pytest

from quantize import files
from quantize.config import IO, ConfigError, Granularity, InputColor, QuantizeConfig, Variant


def test_defaults_build_every_variant_float32_first():
    c = QuantizeConfig()
    assert [v.value for v in c.variants] == ["float32", "float16", "dynamic_int8", "int8", "int16x8"]
    assert c.io is IO.UINT8 and c.granularity is Granularity.PER_TENSOR   # what an app feeds
    assert c.input_color is InputColor.RGB
    assert 100 <= c.calibration_size <= 1000 and c.needs_calibration


def test_variants_are_canonical_and_round_trip():
    c = QuantizeConfig(variants=("int8", "float32", "int8"), io="uint8", calibration_size=64)
    assert c.variants == (Variant.FLOAT32, Variant.INT8)
    assert c.to_dict() == {"variants": ["float32", "int8"], "io": "uint8", "input_color": "rgb",
                           "calibration_size": 64, "granularity": "per_tensor"}
    assert QuantizeConfig.from_dict(c.to_dict()) == c
    # a recipe written before input_color existed built the trained channels
    old = {k: v for k, v in c.to_dict().items() if k != "input_color"}
    assert QuantizeConfig.from_dict(old).input_color is InputColor.AS_TRAINED
    assert not QuantizeConfig(variants=("float16", "dynamic_int8")).needs_calibration


@pytest.mark.parametrize("kw, message", [
    ({"variants": ()}, "choose at least one variant"),
    ({"variants": ("int4",)}, "'int4' is not a valid Variant"),
    ({"io": "int16"}, "'int16' is not a valid IO"),
    ({"input_color": "bgr"}, "'bgr' is not a valid InputColor"),
    ({"calibration_size": 0}, "calibration_size must be an integer >= 1 (an empty calibration set"),
    ({"calibration_size": 2.5}, "calibration_size must be an integer >= 1"),
])
def test_bad_config(kw, message):
    with pytest.raises(ConfigError) as e:
        QuantizeConfig(**kw)
    assert message in str(e.value)


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path):
    target = tmp_path / "int8.tflite"
    files.write_bytes(target, b"old")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["int8.tflite"]
    files.write_json(tmp_path / "a.json", {"x": 1})
    assert (tmp_path / "a.json").read_text() == '{\n  "x": 1\n}\n'
    assert files.sha256(b"abc") == files.sha256(_write(tmp_path / "abc", b"abc"))


def _write(path, data):
    path.write_bytes(data)
    return path
