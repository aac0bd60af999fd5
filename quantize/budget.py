"""Accuracy budget for the int8 variant: keep the most sensitive layers in float32.

    python -m quantize --max-drop 0.5          # make export MAX_DROP=0.5

If full int8 loses more than ``max_drop`` top-1 points against the float32
model on the **validation** split (never test: a budget tuned on the test
images would flatter the reported test accuracy), the layers are ranked by
their per-layer error (``quantize.debug``, RMSE / scale, worst first) and
added to a deny-list one at a time; after each step the model is quantized
again from the same calibration (a fraction of a second) and its validation
top-1 measured with ``android_bench.device.evaluate``, the code every other
top-1 here comes from. The search stops at the first deny-list within budget,
then tries to drop each deny-listed layer again (last added first), keeping
the removal when the budget still holds: the per-layer error ranks a layer by
its own error, while the accuracy may need another layer (the one that
*produces* a wide-range activation) to stay float with it, so the forward pass
can overshoot. If no deny-list meets the budget, the one with the best
validation top-1 is kept and the record says so.

A deny-listed layer runs in float32 between a DEQUANTIZE and a QUANTIZE: the
model is no longer full-integer, so NPUs, DSPs and Edge TPUs fall back to the
CPU for it, and the file grows by its float32 weights. The record gives both
costs: size, and host latency (``android_bench.device.measure.time_invoke``,
batch 1, on this machine's runtime) of plain int8 against the selective model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from android_bench.device.evaluate import Classifier, evaluate
from android_bench.device.measure import Protocol, time_invoke
from quantize.debug import Calibrated, LayerError

LATENCY_PROTOCOL = Protocol(warmup_runs=5, warmup_seconds=0.2, runs=50, min_seconds=0.5)
RANKED_IN_RECORD = 20   # layers of the ranking quantize.json keeps
TOLERANCE = 1e-9        # points; top-1 fractions are ratios of counts


class BudgetError(ValueError):
    pass


def drop_pts(reference: float, top1: float) -> float:
    """Top-1 points lost against the reference (negative: the candidate is better)."""
    return 100.0 * (reference - top1)


@dataclass
class Candidate:
    float_layers: list      # tensor names, in the order they were added
    model: bytes
    top1: float
    drop_pts: float


class Search:
    """Validation top-1 of int8 models with deny-lists, for one calibrated recipe."""

    def __init__(self, calibrated: Calibrated, images: np.ndarray, labels: np.ndarray,
                 label_names: list, reference_top1: float, max_drop: float):
        self.calibrated = calibrated
        self.images, self.labels, self.label_names = images, labels, label_names
        self.reference_top1 = reference_top1
        self.max_drop = max_drop
        self.steps: list[dict] = []

    def measure(self, float_layers: list, action: str, layer: LayerError | None) -> Candidate:
        model = self.calibrated.quantize(float_layers)
        top1 = validation_top1(model, self.calibrated.preprocessing, self.images, self.labels,
                               self.label_names)
        c = Candidate(list(float_layers), model, top1, drop_pts(self.reference_top1, top1))
        self.steps.append({"action": action, "layer": layer.layer if layer else None,
                           "tensor": layer.tensor if layer else None,
                           "float_layers": len(float_layers), "top1": top1, "drop_pts": c.drop_pts,
                           "within_budget": self.within(c)})
        return c

    def within(self, c: Candidate) -> bool:
        return c.drop_pts <= self.max_drop + TOLERANCE


def validation_top1(model: bytes, preprocessing, images, labels, label_names) -> float:
    clf = Classifier(model, preprocessing=preprocessing)
    return evaluate(clf, images, labels, label_names).top1


def search(calibrated: Calibrated, ranking: list[LayerError], images: np.ndarray, labels: np.ndarray,
           label_names: list, reference_top1: float, max_drop: float, plain: Candidate, progress=None):
    """Greedy forward over ``ranking`` until within budget, then backward removal.

    ``plain`` is full int8, the starting point: if no deny-list does better, it
    stays the best found. Returns (best Candidate, met, Search with its steps).
    """
    from pipeline import quiet
    progress = progress or quiet.progress
    s = Search(calibrated, images, labels, label_names, reference_top1, max_drop)
    by_tensor = {r.tensor: r for r in ranking}
    deny: list = []
    best = plain
    with progress(total=len(ranking), desc="deny-listing layers", unit="layer", leave=False) as bar:
        for r in ranking:
            deny.append(r.tensor)
            c = s.measure(deny, "keep float32", r)
            bar.update(1)
            bar.set_postfix(drop=f"{c.drop_pts:.2f}pt")
            if (c.drop_pts, len(c.float_layers)) < (best.drop_pts, len(best.float_layers)):
                best = c
            if s.within(c):
                break
    met = s.within(best)
    if not met:
        return best, False, s
    found = best
    with progress(total=len(found.float_layers), desc="pruning the deny-list", unit="layer",
                  leave=False) as bar:
        for t in list(reversed(found.float_layers)):
            trial = [d for d in found.float_layers if d != t]
            if trial:
                c = s.measure(trial, "back to int8", by_tensor[t])
                if s.within(c):
                    found = c
            bar.update(1)
    return found, True, s


def host_latency(model: bytes, preprocessing, image: np.ndarray) -> dict:
    """Batch-1 ``invoke()`` latency on this host, the benchmark contract's statistics (ms)."""
    clf = Classifier(model, preprocessing=preprocessing, batch_size=1)
    clf.interpreter.set_tensor(clf._input, clf.as_input(image[:1]))
    t = time_invoke(clf.interpreter.invoke, LATENCY_PROTOCOL)
    return {"median_ms": t["median_ms"], "p90_ms": t["p90_ms"], "runs": t["runs"],
            "runtime": clf.runtime["name"], "runtime_version": clf.runtime["version"]}


def _layer(r: LayerError) -> dict:
    return {"layer": r.layer, "op": r.op, "tensor": r.tensor, "rmse_over_scale": r.rmse_over_scale,
            "max_abs_error": r.max_abs_error}


def apply(calibrated_factory, plain_int8: bytes, float32: bytes, val, label_names: list,
          preprocessing, max_drop: float, keras_layers: dict, progress=None,
          output_layer: str | None = None, reference_preprocessing=None) -> tuple[bytes, dict]:
    """The int8 model to ship under ``max_drop`` and the record quantize.json keeps.

    ``calibrated_factory()`` builds the ``Calibrated`` recipe; it is only called
    (a second calibration pass) when plain int8 is over budget. ``val`` is the
    validation Split. ``preprocessing`` is what the int8 models take,
    ``reference_preprocessing`` what float32 takes (default: the same): they
    differ when int8 normalizes inside (``quantize.app_input``).
    """
    from train.fit import machine

    if len(val) == 0:
        raise BudgetError("the validation split is empty: --max-drop measures top-1 on it (never on "
                          "test). Use data with more images, or leave --max-drop out")
    t0 = time.perf_counter()
    ref = validation_top1(float32, reference_preprocessing or preprocessing, val.x, val.y, label_names)
    plain_top1 = validation_top1(plain_int8, preprocessing, val.x, val.y, label_names)
    record = {"max_drop_pts": max_drop, "split": "val", "images": int(len(val)),
              "float32_top1": ref, "int8_top1": plain_top1, "int8_drop_pts": drop_pts(ref, plain_top1)}
    if drop_pts(ref, plain_top1) <= max_drop + TOLERANCE:
        record.update(met=True, searched=False, float_layers=[], top1=plain_top1,
                      drop_pts=drop_pts(ref, plain_top1), steps=[], ranking=[], cost=None,
                      message=f"full int8 is within budget: {drop_pts(ref, plain_top1):+.2f} pt "
                              f"<= {max_drop} pt on {len(val)} validation images",
                      seconds=time.perf_counter() - t0)
        return plain_int8, record
    calibrated = calibrated_factory()
    ranking = calibrated.layer_errors(keras_layers=keras_layers, progress=progress, output_layer=output_layer)
    plain = Candidate([], plain_int8, plain_top1, drop_pts(ref, plain_top1))
    best, met, s = search(calibrated, ranking, val.x, val.y, label_names, ref, max_drop, plain, progress)
    by_tensor = {r.tensor: r for r in ranking}
    float_layers = [_layer(by_tensor[t]) for t in best.float_layers]
    plain_lat = host_latency(plain_int8, preprocessing, val.x)
    best_lat = host_latency(best.model, preprocessing, val.x)
    names = ", ".join(f["layer"] for f in float_layers)
    if met:
        message = (f"full int8 lost {drop_pts(ref, plain_top1):.2f} pt > {max_drop} pt; with "
                   f"{len(float_layers)} layer(s) kept in float32 ({names}) it loses "
                   f"{best.drop_pts:.2f} pt on {len(val)} validation images")
    else:
        found = (f"{len(float_layers)} layer(s) in float32: {names}" if float_layers else
                 "full int8 itself: no deny-list did better")
        message = (f"no deny-list meets the budget of {max_drop} pt: full int8 lost "
                   f"{drop_pts(ref, plain_top1):.2f} pt, the best found ({found}) loses "
                   f"{best.drop_pts:.2f} pt and is kept. What is left is "
                   f"not any layer's arithmetic (the int8 input/output tensors, e.g. output scores "
                   f"too close for int8 steps): try --io float32, --granularity per_channel, or "
                   f"int16x8")
    record.update(
        met=met, searched=True, float_layers=float_layers, top1=best.top1, drop_pts=best.drop_pts,
        steps=s.steps, ranking=[_layer(r) for r in ranking[:RANKED_IN_RECORD]],
        cost={"size_bytes": len(best.model), "int8_size_bytes": len(plain_int8),
              "size_ratio": len(best.model) / len(plain_int8),
              "latency": {"int8_median_ms": plain_lat["median_ms"], "median_ms": best_lat["median_ms"],
                          "ratio": best_lat["median_ms"] / plain_lat["median_ms"],
                          "batch": 1, "threads": None, "protocol": LATENCY_PROTOCOL.to_dict(),
                          "runtime": best_lat["runtime"], "runtime_version": best_lat["runtime_version"],
                          "machine": machine()}},
        message=message, seconds=time.perf_counter() - t0)
    return best.model, record
