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


def test_exact_totals_for_the_reference_networks():
    # Exact counts of the keras.applications graphs; the papers round these.
    assert _profile("--arch", "v1", "--alpha", "1.0", "--resolution", "224")["macs"] == 568_740_352
    assert _profile("--arch", "v2", "--resolution", "224", "--alpha", "1.0")["macs"] == 300_774_272
    assert _profile("--arch", "v2", "--resolution", "224", "--alpha", "1.0")["params"] == 3_538_984


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
