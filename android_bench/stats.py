"""Is a difference between two variants real, or noise? The report's statistics.

    from android_bench.stats import bootstrap_speedup, mcnemar
    bootstrap_speedup(float32_samples_ms, int8_samples_ms)    # speedup of the median, 95% interval
    mcnemar(b=10, c=2)                                         # p = 0.0386 (exact)

Latency: the runner keeps up to 1000 per-run times per (variant, threads,
XNNPACK) (``samples_ms``). The speedup is float32's median over the
variant's median, as in the report's table. Its confidence interval is a
percentile bootstrap: both sample sets are resampled with replacement,
independently (they come from two separate processes), ``resamples`` times
with a fixed seed so the report is reproducible, and the interval is the
(2.5, 97.5) percentiles of the resampled ratios (and of the differences of the
medians, in ms). A speedup whose interval contains 1.0x is within noise.
The interval covers run-to-run noise within one measurement, not
what changes between two sessions (temperature, background load): a repeated
run can land outside it.

Accuracy: float32 and the variant classify the same eval-pack images, so
their correctness is paired. McNemar's test looks only at the discordant
images: b, float32 right and the variant wrong; c, the reverse. Under "same
accuracy" each discordant image goes either way with probability 1/2. With
fewer than ``EXACT_BELOW`` discordant images the two-sided exact binomial p
is used; from there on, the chi-square with continuity correction,
(|b - c| - 1)^2 / (b + c) on one degree of freedom. p >= 0.05: the top-1
difference is within noise. No scipy: math and numpy only.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
ALPHA = 0.05
EXACT_BELOW = 25      # discordant pairs; the usual rule of thumb for the chi-square approximation


def bootstrap_speedup(reference_ms: Sequence[float], variant_ms: Sequence[float], confidence: float = CONFIDENCE,
                      resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """Speedup median(reference)/median(variant) and median difference, with percentile bootstrap intervals.

    Returns {"speedup", "speedup_ci": [lo, hi], "diff_ms", "diff_ci_ms": [lo, hi]
    (variant minus reference: negative is faster), "within_noise" (the speedup
    interval contains 1.0), "confidence", "resamples"}.
    """
    ref = np.asarray(reference_ms, dtype=np.float64)
    var = np.asarray(variant_ms, dtype=np.float64)
    if len(ref) < 2 or len(var) < 2:
        raise ValueError(f"the bootstrap needs at least 2 samples on each side, got {len(ref)} and {len(var)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    rng = np.random.default_rng(seed)
    # (resamples, n) indices: 2000 x 1000 int64 is 16 MB, done in one numpy call
    ref_medians = np.median(ref[rng.integers(0, len(ref), (resamples, len(ref)))], axis=1)
    var_medians = np.median(var[rng.integers(0, len(var), (resamples, len(var)))], axis=1)
    tails = [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2]
    ratio = np.percentile(ref_medians / var_medians, tails)
    diff = np.percentile(var_medians - ref_medians, tails)
    return {"speedup": float(np.median(ref) / np.median(var)), "speedup_ci": [float(ratio[0]), float(ratio[1])],
            "diff_ms": float(np.median(var) - np.median(ref)), "diff_ci_ms": [float(diff[0]), float(diff[1])],
            "within_noise": bool(ratio[0] <= 1.0 <= ratio[1]), "confidence": confidence, "resamples": resamples}


def mcnemar(b: int, c: int) -> dict:
    """McNemar's test on b (reference right, variant wrong) and c (the reverse): {"p", "method", "b", "c"}."""
    if b < 0 or c < 0 or int(b) != b or int(c) != c:
        raise ValueError(f"discordant counts must be integers >= 0, got b={b}, c={c}")
    b, c = int(b), int(c)
    n = b + c
    if n == 0:
        return {"p": 1.0, "method": "exact", "b": b, "c": c}
    if n < EXACT_BELOW:
        # two-sided: twice the probability of a split at least this lopsided, Binomial(n, 1/2)
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
        return {"p": min(1.0, 2 * tail), "method": "exact", "b": b, "c": c}
    chi2 = (abs(b - c) - 1) ** 2 / n
    # survival function of chi-square with 1 degree of freedom: erfc(sqrt(x / 2))
    return {"p": math.erfc(math.sqrt(chi2 / 2)), "method": "chi-square, continuity-corrected", "b": b, "c": c}


def paired_correctness(reference: Sequence[int], variant: Sequence[int], labels: Sequence[int]) -> tuple[int, int]:
    """(b, c) over the images both classified: b = reference right and variant wrong, c = the reverse."""
    n = min(len(reference), len(variant), len(labels))
    y = np.asarray(labels[:n])
    ref_ok = np.asarray(reference[:n]) == y
    var_ok = np.asarray(variant[:n]) == y
    return int(np.sum(ref_ok & ~var_ok)), int(np.sum(~ref_ok & var_ok))


# ---- the report's use: rows of android_bench.report, results files as loaded ----

STAT_KEYS = ("speedup_ci", "latency_diff_ms", "latency_diff_ci_ms", "mcnemar_p", "mcnemar_b", "mcnemar_c",
             "mcnemar_method", "mcnemar_images", "within_noise")


def eval_labels(doc: dict) -> list | None:
    """The labels of the eval-pack images a results file classified, in order.

    The runner stores them (``eval_labels``); for older results files the eval
    pack named in ``host.eval_pack`` is read, if it is still there with the same sha256.
    """
    if doc.get("eval_labels") is not None:
        return list(doc["eval_labels"])
    pack = (doc.get("host") or {}).get("eval_pack") or {}
    path = pack.get("path")
    if not path:
        return None
    from pathlib import Path

    from quantize import files
    if not Path(path).is_file() or files.sha256(path) != pack.get("sha256"):
        return None
    with np.load(path) as data:
        return [int(v) for v in data["y"]]


def annotate(rows: list[dict], docs: dict[str, dict], key, reference: str = "float32") -> None:
    """Adds STAT_KEYS to each row: against the ``reference`` row with the same ``key(row)``.

    ``speedup_ci`` [lo, hi] and ``latency_diff_ci_ms`` need ``samples_ms`` on both
    rows, and a row that was not emulated; ``mcnemar_*`` need both variants' per-image
    predictions in the same results file and the labels. ``within_noise`` is {"latency": the speedup
    interval contains 1.0, "top1": McNemar p >= 0.05}, None where not computable.
    """
    samples = {(name, r.get("variant"), r.get("threads"), r.get("xnnpack"), r.get("delegate")): r.get("samples_ms")
               for name, d in docs.items() for r in d.get("results", [])}
    refs = {key(r): r for r in rows if r["variant"] == reference and not r["error"]}
    labels: dict[str, list | None] = {}
    tests: dict[tuple, dict | None] = {}
    for r in rows:
        r.update(dict.fromkeys(STAT_KEYS))
        ref = refs.get(key(r))
        if ref is None or r is ref or r["error"]:
            continue
        within = {"latency": None, "top1": None}
        mine = samples.get((r["results_file"], r["variant"], r["threads"], r.get("xnnpack"), r.get("delegate")))
        theirs = samples.get((ref["results_file"], ref["variant"], ref["threads"], ref.get("xnnpack"),
                              ref.get("delegate")))
        # an emulator's timings (qemu) say nothing about a CPU: no interval, no latency verdict
        if mine and theirs and len(mine) >= 2 and len(theirs) >= 2 and not r.get("emulation"):
            bs = bootstrap_speedup(theirs, mine)
            r.update(speedup_ci=bs["speedup_ci"], latency_diff_ms=bs["diff_ms"], latency_diff_ci_ms=bs["diff_ci_ms"])
            within["latency"] = bs["within_noise"]
        name = r["results_file"]
        if name == ref["results_file"]:
            if (name, r["variant"]) not in tests:
                doc = docs[name]
                predictions = doc.get("predictions") or {}
                if name not in labels:
                    labels[name] = eval_labels(doc) if predictions else None
                y = labels[name]
                test = None
                if y and predictions.get(reference) and predictions.get(r["variant"]):
                    b, c = paired_correctness(predictions[reference], predictions[r["variant"]], y)
                    test = dict(mcnemar(b, c), images=min(len(predictions[reference]),
                                                          len(predictions[r["variant"]]), len(y)))
                tests[(name, r["variant"])] = test
            test = tests[(name, r["variant"])]
            if test:
                r.update(mcnemar_p=test["p"], mcnemar_b=test["b"], mcnemar_c=test["c"],
                         mcnemar_method=test["method"], mcnemar_images=test["images"])
                within["top1"] = test["p"] >= ALPHA
        r["within_noise"] = within


def _verdict(within: bool | None, sign: float, better: str, worse: str) -> str:
    if within is None:
        return "-"
    return "within noise" if within else better if sign > 0 else worse


def markdown(rows: list[dict], reference: str = "float32") -> list[str]:
    """The statistics section of one target, [] when no row has any."""
    lines = []
    for r in rows:
        if r.get("speedup_ci") is None and r.get("mcnemar_p") is None:
            continue
        runtime = f"{r['runtime']} {r['runtime_version']}" + ("" if r.get("xnnpack", True) else ", no XNNPACK")
        if r.get("emulation"):   # an emulator's timings: no latency verdict to draw
            speed, latency = "-", "emulated: not compared"
        elif r.get("speedup_ci") is not None:
            lo, hi = r["speedup_ci"]
            speed = f"{r['speedup_vs_float32']:.2f}x ({lo:.2f}–{hi:.2f}x)" if r.get("speedup_vs_float32") else \
                f"({lo:.2f}–{hi:.2f}x)"
            latency = _verdict(r["within_noise"]["latency"], -r["latency_diff_ms"], "faster", "slower")
        else:
            speed, latency = "-", "-"
        if r.get("mcnemar_p") is not None:
            counts, p = f"{r['mcnemar_b']} / {r['mcnemar_c']}", f"{r['mcnemar_p']:.3g}"
            top1 = _verdict(r["within_noise"]["top1"], r["mcnemar_c"] - r["mcnemar_b"], "higher", "lower")
        else:
            counts, p, top1 = "-", "-", "-"
        lines.append(f"| {r['variant']} | {runtime} | {r['threads']} | {speed} | {latency} | {counts} | {p} | "
                     f"{top1} |")
    if not lines:
        return []
    plain = []   # top-1 is one test per variant and results file, whatever the thread count
    for r in rows:
        within = r.get("within_noise") or {}
        runtime = f"{r['runtime']} {r['runtime_version']}"
        if within.get("top1"):
            text = f"{r['variant']} top-1 ({runtime}, McNemar p = {r['mcnemar_p']:.2g})"
            plain += [text] if text not in plain else []
        if within.get("latency") and not r.get("emulation"):
            plain.append(f"{r['variant']} latency ({runtime}, {r['threads']} thread{'s' if r['threads'] != 1 else ''}"
                         f": the interval contains 1.00x)")
    return [f"Statistics against {reference} (same runtime, threads and XNNPACK setting): the speedup of the "
            f"median with its {100 * CONFIDENCE:.0f}% bootstrap interval ({RESAMPLES} resamples of the per-run "
            f"times, seed {SEED}); McNemar's test on the images both classified, b = {reference} right and the "
            f"variant wrong, c = the reverse (p < {ALPHA}: a real top-1 difference).", "",
            "| variant | runtime | threads | speedup (95% CI) | latency | McNemar b / c | p | top-1 |",
            "|---|---|---:|---:|---|---:|---:|---|", *lines, "",
            ("Within noise, no real difference from " + reference + ": " + "; ".join(plain) + "."
             if plain else f"No difference from {reference} is within noise."), ""]
