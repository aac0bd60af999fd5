"""The report's statistics: bootstrap intervals of the speedup, McNemar's test, and a real run through them."""
from __future__ import annotations

import json
import math
import shutil
from importlib import metadata

import numpy as np
import pytest

from android_bench import bench, report, stats
from android_bench.config import BenchConfig
from android_bench.device.measure import Protocol
from android_bench.targets import LocalTarget


def _latencies(rng, n, median_ms):
    """Per-run times as a CPU gives them: log-normal around the median, a few slow outliers."""
    x = median_ms * rng.lognormal(0.0, 0.08, n)
    x[rng.random(n) < 0.03] *= 3
    return x


def test_bootstrap_identical_distributions_cover_one():
    rng = np.random.default_rng(1)
    a, b = _latencies(rng, 400, 2.0), _latencies(rng, 400, 2.0)
    bs = stats.bootstrap_speedup(a, b)
    lo, hi = bs["speedup_ci"]
    assert lo < 1.0 < hi and bs["within_noise"] is True
    assert bs["speedup"] == pytest.approx(np.median(a) / np.median(b))
    assert bs["diff_ci_ms"][0] < 0 < bs["diff_ci_ms"][1]
    assert stats.bootstrap_speedup(a, b) == bs                      # fixed seed: the same report twice
    assert stats.bootstrap_speedup(a, b, seed=7)["speedup_ci"] != bs["speedup_ci"]


def test_bootstrap_clear_shift_excludes_one():
    rng = np.random.default_rng(2)
    float32, int8 = _latencies(rng, 300, 2.0), _latencies(rng, 300, 0.8)   # int8 2.5x faster
    bs = stats.bootstrap_speedup(float32, int8)
    lo, hi = bs["speedup_ci"]
    assert 1.0 < lo < 2.5 < hi and bs["within_noise"] is False
    assert bs["diff_ms"] == pytest.approx(np.median(int8) - np.median(float32))
    assert bs["diff_ci_ms"][1] < 0                                 # faster: the whole interval below 0 ms
    # a 1% shift with few samples is not resolvable: within noise
    small = stats.bootstrap_speedup(_latencies(rng, 30, 2.0), _latencies(rng, 30, 1.98))
    assert small["within_noise"] is True


def test_bootstrap_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(120):
        a, b = rng.lognormal(0, 0.1, 150), rng.lognormal(0, 0.1, 150)   # true ratio of medians: 1
        lo, hi = stats.bootstrap_speedup(a, b, resamples=400, seed=int(rng.integers(1 << 30)))["speedup_ci"]
        hits += lo <= 1.0 <= hi
    assert 0.85 <= hits / 120 <= 1.0
    with pytest.raises(ValueError, match="at least 2 samples on each side, got 1 and 5"):
        stats.bootstrap_speedup([1.0], [1.0] * 5)


def test_mcnemar_against_hand_computed_values():
    # exact: n = 12 discordant, P(X <= 2) = (1 + 12 + 66) / 4096, two-sided x2
    m = stats.mcnemar(10, 2)
    assert m["method"] == "exact" and m["p"] == pytest.approx(2 * 79 / 4096)
    assert m["p"] == pytest.approx(0.038574, abs=1e-6)
    assert stats.mcnemar(2, 10)["p"] == m["p"]
    assert stats.mcnemar(5, 0)["p"] == pytest.approx(2 / 32)
    assert stats.mcnemar(1, 0)["p"] == 1.0 and stats.mcnemar(0, 0)["p"] == 1.0 and stats.mcnemar(7, 7)["p"] == 1.0
    # chi-square with continuity correction: (|30 - 10| - 1)^2 / 40 = 9.025 on 1 df, i.e. a normal
    # z = sqrt(9.025) = 3.0042 two-sided: 2 * (0.0013499 - 0.0044318 * 0.0042) = 0.002663 (from the tables)
    m = stats.mcnemar(30, 10)
    assert m["method"].startswith("chi-square") and m["p"] == pytest.approx(0.002663, rel=2e-3)
    # 24 discordant pairs still exact, 25 switch to the approximation, and the two agree roughly there
    exact, approx = stats.mcnemar(17, 7), stats.mcnemar(18, 7)
    assert exact["method"] == "exact" and approx["method"].startswith("chi-square")
    assert exact["p"] == pytest.approx(sum(math.comb(24, k) for k in range(8)) / 2 ** 23)
    assert 0.03 < approx["p"] < 0.06 and 0.03 < exact["p"] < 0.07
    with pytest.raises(ValueError, match="integers >= 0, got b=-1"):
        stats.mcnemar(-1, 3)


def test_paired_correctness():
    labels = [0, 1, 2, 3, 0, 1]
    ref = [0, 1, 2, 0, 1, 1]      # wrong on images 3 and 4
    var = [0, 2, 2, 3, 1, 0]      # wrong on 1, 4 and 5
    assert stats.paired_correctness(ref, var, labels) == (2, 1)   # b: images 1, 5; c: image 3
    assert stats.paired_correctness(ref, var[:3], labels) == (1, 0)


QUICK = BenchConfig(threads=(1,), protocol=Protocol(warmup_runs=2, warmup_seconds=0, runs=40, min_seconds=0))


@pytest.mark.slow
def test_statistics_of_a_real_run(bench_build, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for m in bench_build.models:
        shutil.copy(m, models / m.name)
    shutil.copy(bench_build.models[0], models / "float32_copy.tflite")   # the same model under another name
    pack = bench_build.root / "eval_pack.npz"
    out = tmp_path / "bench"
    result = bench.run(QUICK, LocalTarget(), sorted(models.glob("*.tflite")), pack, out)
    assert result.failed == []
    doc = result.doc
    with np.load(pack) as p:
        y = p["y"]
    assert doc["eval_labels"] == [int(v) for v in y]
    assert all(len(r["samples_ms"]) == r["runs"] >= 40 for r in doc["results"])

    written = report.write(out)
    rows = {r["variant"]: r for r in written["results"]}
    assert set(rows) == {"float32", "float32_copy", "dynamic_int8", "int8"}
    assert rows["float32"]["speedup_ci"] is None and rows["float32"]["mcnemar_p"] is None
    pred = doc["predictions"]
    for name in ("float32_copy", "dynamic_int8", "int8"):
        r = rows[name]
        lo, hi = r["speedup_ci"]
        assert 0 < lo <= hi and r["latency_diff_ci_ms"][0] <= r["latency_diff_ci_ms"][1]
        assert r["within_noise"]["latency"] == (lo <= 1.0 <= hi)
        ref_ok = np.array(pred["float32"]) == y
        var_ok = np.array(pred[name]) == y
        assert (r["mcnemar_b"], r["mcnemar_c"]) == (int(np.sum(ref_ok & ~var_ok)), int(np.sum(~ref_ok & var_ok)))
        assert r["mcnemar_p"] == stats.mcnemar(r["mcnemar_b"], r["mcnemar_c"])["p"]
        assert r["mcnemar_images"] == len(y) and r["within_noise"]["top1"] == (r["mcnemar_p"] >= 0.05)
    # the same file twice: identical predictions, nothing discordant
    assert (rows["float32_copy"]["mcnemar_b"], rows["float32_copy"]["mcnemar_c"]) == (0, 0)
    assert rows["float32_copy"]["mcnemar_p"] == 1.0 and rows["float32_copy"]["within_noise"]["top1"] is True

    md = (out / "report.md").read_text()
    assert "Statistics against float32" in md and "| variant | runtime | threads | speedup (95% CI) |" in md
    assert f"float32_copy top-1 (ai_edge_litert {metadata.version('ai-edge-litert')}, McNemar p = 1)" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| int8 |") and "(" in ln and "–" in ln)
    assert f"{rows['int8']['mcnemar_b']} / {rows['int8']['mcnemar_c']}" in line
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["results"] == written["results"]

    # An older results file without eval_labels: the labels come from the eval pack it names.
    path = result.path
    older = json.loads(path.read_text())
    del older["eval_labels"]
    path.write_text(json.dumps(older))
    again = {r["variant"]: r for r in report.write(out)["results"]}
    assert again["int8"]["mcnemar_p"] == rows["int8"]["mcnemar_p"]
    older["host"]["eval_pack"]["sha256"] = "0" * 64           # the pack changed since: no test, not a wrong one
    path.write_text(json.dumps(older))
    changed = {r["variant"]: r for r in report.write(out)["results"]}
    assert changed["int8"]["mcnemar_p"] is None and changed["int8"]["within_noise"]["top1"] is None
    assert changed["int8"]["speedup_ci"] == rows["int8"]["speedup_ci"]
