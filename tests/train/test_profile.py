"""Multiply-adds and parameters against the published figures."""
import json

import pytest
from click.testing import CliRunner

from train.__main__ import cli

# (arch, alpha, published MACs in millions, keras.applications' documented params in millions)
# MACs: MobileNet V1 paper table 8 (569M, 41M for 0.25) and V2 paper table 6 / TF-slim's
# checkpoint table (300M; 59M for 0.35). Params: keras.applications' table (4.3M, 3.5M).
PUBLISHED = [("v1", 1.0, 569, 4.3), ("v1", 0.25, 41, 0.5), ("v2", 1.0, 300, 3.5), ("v2", 0.35, 59, 1.7)]


def _profile(*args):
    r = CliRunner().invoke(cli, ["profile", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.parametrize("arch, alpha, macs_m, params_m", PUBLISHED)
def test_standard_224_matches_papers(arch, alpha, macs_m, params_m):
    p = _profile("--arch", arch, "--alpha", str(alpha), "--resolution", "224", "--classes", "1000")
    assert isinstance(p["macs"], int) and isinstance(p["params"], int)
    assert abs(p["macs"] / 1e6 - macs_m) < 1   # the papers round 568.7M up and 300.8M down
    assert round(p["params"] / 1e6, 1) == params_m
    assert p["macs"] == sum(layer["macs"] for layer in p["layers"])


# MobileNet V3 (Howard et al., "Searching for MobileNetV3", ICCV 2019, arXiv v5): table 3 (224 px),
# the appendix's table 9 (other resolutions), and the minimalistic rows of TF-slim's checkpoint
# table (repeated in keras.applications' docstring). Table 4 (quantized) gives no MAdds or params.
# Other resolutions than 224 are slow only because there are many of them.
# (arch, alpha, minimalistic, resolution, MAdds in millions or None, params in millions, where)
PUBLISHED_V3 = [
    ("v3-large", 1.0, False, 224, 217, 5.4, "table 9; table 3 says 219, see the README"),
    ("v3-large", 0.75, False, 224, 155, 4.0, "tables 3 and 9"),
    ("v3-small", 1.0, False, 224, 56, 2.5, "table 3"),
    ("v3-small", 1.0, False, 224, 57, 2.5, "table 9"),
    ("v3-small", 0.75, False, 224, 44, 2.0, "tables 3 and 9"),
    pytest.param("v3-large", 1.0, False, 256, 282, 5.4, "table 9", marks=pytest.mark.slow),
    pytest.param("v3-large", 1.0, False, 192, 160, 5.4, "table 9", marks=pytest.mark.slow),
    pytest.param("v3-large", 1.0, False, 160, 112, 5.4, "table 9", marks=pytest.mark.slow),
    pytest.param("v3-large", 1.0, False, 128, 73, 5.4, "table 9", marks=pytest.mark.slow),
    pytest.param("v3-large", 1.0, False, 96, 43, 5.4, "table 9", marks=pytest.mark.slow),
    pytest.param("v3-small", 1.0, False, 256, 74, 2.5, "table 9", marks=pytest.mark.slow),
    pytest.param("v3-small", 1.0, False, 160, 30, 2.5, "table 9", marks=pytest.mark.slow),
    pytest.param("v3-small", 1.0, False, 128, 20, 2.5, "table 9", marks=pytest.mark.slow),
    pytest.param("v3-small", 1.0, False, 96, 12, 2.5, "table 9", marks=pytest.mark.slow),
    ("v3-large", 1.0, True, 224, 209, 3.9, "TF-slim, minimalistic"),
    # TF-slim's 65M is not keras.applications' graph (52.3M; no convention closes 12.7M in a
    # network without squeeze-and-excite or hard-swish), only its params are compared.
    ("v3-small", 1.0, True, 224, None, 2.0, "TF-slim, minimalistic"),
]


@pytest.mark.parametrize("arch, alpha, minimalistic, res, macs_m, params_m, where", PUBLISHED_V3)
def test_v3_matches_the_published_tables(arch, alpha, minimalistic, res, macs_m, params_m, where):
    p = _profile("--arch", arch, "--alpha", str(alpha), "--resolution", str(res), "--classes", "1000",
                 "--output-stride", "32", *(["--minimalistic"] if minimalistic else []))
    if macs_m is not None:
        assert abs(p["macs"] / 1e6 - macs_m) < 1, where
    # The papers leave BatchNorm out of the parameters and round to 0.1M.
    assert abs(p["params_without_bn"] / 1e6 - params_m) <= 0.1, where
    assert p["params_without_bn"] == sum(r["params"] for r in p["layers"] if r["type"] != "BatchNormalization")


def test_v3_exact_totals_equal_keras_applications_graph():
    import keras

    from train.profile import profile_model
    for arch, app, macs, params in [("v3-large", keras.applications.MobileNetV3Large, 216_589_760, 5_507_432),
                                    ("v3-small", keras.applications.MobileNetV3Small, 56_510_400, 2_554_968)]:
        p = _profile("--arch", arch, "--alpha", "1.0", "--resolution", "224")
        assert (p["macs"], p["params"]) == (macs, params)
        ref = profile_model(app(input_shape=(224, 224, 3), weights=None, include_preprocessing=False))
        assert (ref["macs"], ref["params"]) == (macs, params)


def test_v3_squeeze_excite_and_hard_swish_rows():
    p = _profile("--arch", "v3-large", "--alpha", "1.0", "--resolution", "224")
    rows = {r["name"]: r for r in p["layers"]}
    se = rows["expanded_conv_12_squeeze_excite_conv"]   # 672 -> 168 channels on the pooled 1x1 map
    assert se["output_shape"] == [1, 1, 168] and se["macs"] == 672 * 168
    assert rows["expanded_conv_12_squeeze_excite_mul"]["macs"] == 0       # the gate multiply: free
    assert rows["expanded_conv_12_depthwise"]["macs"] == 7 * 7 * 25 * 672  # 5x5, stride 2 to 7x7
    assert {r["macs"] for r in p["layers"] if r["type"] == "Activation"} == {0}   # hard-swish: free


def test_exact_totals_for_the_reference_networks():
    # Exact counts of the keras.applications graphs; the papers round these.
    assert _profile("--arch", "v1", "--alpha", "1.0", "--resolution", "224")["macs"] == 568_740_352
    assert _profile("--arch", "v2", "--resolution", "224", "--alpha", "1.0")["macs"] == 300_774_272
    assert _profile("--arch", "v2", "--resolution", "224", "--alpha", "1.0")["params"] == 3_538_984
    # Without BatchNorm, as the papers count: V1 4.2M (its table 8), V2 3.4M (its table 4).
    assert _profile("--arch", "v1", "--alpha", "1.0", "--resolution", "224")["params_without_bn"] == 4_210_088
    assert _profile("--arch", "v2", "--alpha", "1.0", "--resolution", "224")["params_without_bn"] == 3_470_760


def test_layer_rows_keep_keras_names_and_count_depthwise():
    p = _profile("--arch", "v2", "--alpha", "1.0", "--resolution", "224")
    rows = {r["name"]: r for r in p["layers"]}
    dw = rows["block_1_depthwise"]   # 112x112x96 in, stride 2 -> 56x56x96
    assert dw["type"] == "DepthwiseConv2D" and dw["output_shape"] == [56, 56, 96]
    assert dw["macs"] == 56 * 56 * 9 * 96
    assert rows["predictions"]["macs"] == 1280 * 1000
    assert rows["block_1_expand_BN"]["macs"] == 0


def test_small_input_profile_and_table():
    r = CliRunner().invoke(cli, ["profile", "--arch", "v1", "--alpha", "0.25", "--resolution", "32",
                                 "--classes", "10", "--output-stride", "8"])
    assert r.exit_code == 0, r.output
    assert "conv_dw_13" in r.output and r.output.strip().splitlines()[-1].endswith("M MACs")
    p = _profile("--arch", "v1", "--alpha", "0.25", "--resolution", "32", "--classes", "10",
                 "--output-stride", "8")
    assert p["layers"][-1]["output_shape"] == [10]
    assert [r for r in p["layers"] if r["name"] == "conv_pw_13"][0]["output_shape"] == [4, 4, 256]


def test_profile_saved_model(tmp_path):
    from train.config import TrainConfig
    from train.fit import build_model
    m = build_model(TrainConfig(arch="v2", alpha=0.35, resolution=32, channels=1), classes=4)
    m.save(tmp_path / "m.keras")
    p = _profile("--model", str(tmp_path / "m.keras"))
    assert p["params"] == m.count_params()


def test_profile_bad_input():
    r = CliRunner().invoke(cli, ["profile", "--alpha", "-1"])
    assert r.exit_code != 0 and "alpha must be in (0, 4], got -1.0" in r.output
    r = CliRunner().invoke(cli, ["profile", "--classes", "0"])
    assert r.exit_code != 0 and "--classes must be >= 1" in r.output
