"""Top-1 on the eval pack batched against image by image, same model, same threads, in one run.

    .venv/bin/python benchmarks/batched_eval.py build/*.tflite [--threads 1,2] [--eval-pack build/eval_pack.npz]

Both sides are ``android_bench.device.evaluate`` as the device runner uses it;
what differs is the interpreter's batch dimension: resized once to
``--batch-size`` (the last batch padded) against 1, one ``invoke()`` per image.
Each figure is the wall time of ``evaluate()`` over the whole pack --
preprocessing, ``set_tensor``, ``invoke`` and argmax -- after the interpreter
is built; one untimed pass over the first batch warms each up. Both sides get
the same thread count. The predictions must be identical (exit 1 otherwise);
the ratio is the figure to quote.

What limits the ratio: batching saves the per-call overhead (Python, tensor
copies, ~10 µs) and lets XNNPACK's GEMMs work on 64 images at once; when the
model's own compute dominates (the 32 px MobileNetV1 0.5: 150 µs per image on
one core) that is ~1.3x, and more threads help a batch of 64 more than a single
small image.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402
import numpy as np  # noqa: E402


def _compare(model: str, x, y, labels, batch_size: int, threads: int) -> bool:
    from android_bench.device.evaluate import Classifier, evaluate

    results = {}
    for name, b in (("batched", batch_size), ("one by one", 1)):
        clf = Classifier(model, batch_size=b, num_threads=threads)
        clf.predict(x[:batch_size])   # warm-up: first-inference costs are not what is compared
        t0 = time.perf_counter()
        result = evaluate(clf, x, y, labels)
        results[name] = (result, time.perf_counter() - t0)
    (batched, tb), (single, ts) = results["batched"], results["one by one"]
    same = bool(np.array_equal(batched.predictions, single.predictions))
    print(f"{Path(model).name:<20} {threads:>7} {tb:9.2f} s {ts:9.2f} s {ts / tb:7.2f}x  "
          f"{100 * batched.top1:6.2f}% {100 * single.top1:6.2f}%  {'yes' if same else 'NO'}")
    return same


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--eval-pack", type=click.Path(dir_okay=False, exists=True), default=None,
              help="[default: eval_pack.npz beside the first model]")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--threads", default="1,2", show_default=True, help="thread counts, each for both sides")
def main(models, eval_pack, batch_size, threads):
    from android_bench.device.evaluate import interpreter_class

    eval_pack = eval_pack or str(Path(models[0]).parent / "eval_pack.npz")
    with np.load(eval_pack) as pack:
        x, y, labels = pack["x"], pack["y"], [str(v) for v in pack["labels"]]
    runtime = interpreter_class()[1]
    print(f"{len(x)} images {x.shape[1]}x{x.shape[2]}x{x.shape[3]}, batch {batch_size} against 1, "
          f"{runtime['name']} {runtime['version']}, {os.cpu_count()} cores")
    print(f"{'model':<20} {'threads':>7} {'batched':>11} {'one by one':>11} {'ratio':>8}  "
          f"{'top-1 b':>7} {'top-1 1':>7}  identical")
    same = [_compare(m, x, y, labels, batch_size, int(t)) for m in models for t in threads.split(",")]
    if not all(same):
        sys.exit("error: batched and one-by-one predictions differ")


if __name__ == "__main__":
    main()
