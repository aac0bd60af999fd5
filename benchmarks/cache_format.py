"""Memory-mapped .npy against TFRecord shards for the decoded images: the format choice, measured.

    .venv/bin/python benchmarks/cache_format.py DIR [--resolution 96] [--shards 16]

DIR is an image folder (``benchmarks/data_cache.py`` generates some). Its decoded cache
is loaded (or built) with ``load_dataset``; the training split is also written as
TFRecord shards (one ``tf.train.Example`` per image: raw uint8 bytes and the label).
Then one epoch of the training split is read in shuffled batches of 128, each way in a
fresh process, timed from the first batch requested to the last one received:

* ``Split.batch``: a permutation of the rows, one ``Split.batch`` call per batch;
* ``Split.batch`` inside ``tf.data`` (``from_generator``, prefetch): what a Keras loop sees;
* TFRecord: ``TFRecordDataset`` interleaving the shards, ``shuffle`` with a buffer of
  10,000 examples (a shuffle buffer is the only way to shuffle a sequential format;
  a smaller one shuffles less), parse, ``decode_raw``, batch, prefetch.

Printed: images/s and peak RSS (RUSAGE_CHILDREN of a small launcher, as in data_cache.py)
of each, the time to write the shards and their size. Figures depend on the machine's load.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import click  # noqa: E402

from benchmarks.data_cache import mib, run_child  # noqa: E402

READ = """
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
way, data, resolution, shards = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if way != "batch":
    import tensorflow as tf
from imagedata.dataset import load_dataset
from imagedata.preprocess import Preprocessing
train = load_dataset(data, Preprocessing(resolution=resolution, channels=3), skip_bad_images=True).train
shape, n = train.x.shape[1:], len(train)
if way == "batch":
    t0 = time.perf_counter()
    order = np.random.default_rng(0).permutation(n)
    seen = sum(len(train.batch(order[k:k + 128])) for k in range(0, n, 128))
elif way == "generator":
    def batches():
        order = np.random.default_rng(0).permutation(n)
        for k in range(0, n, 128):
            idx = order[k:k + 128]
            yield train.batch(idx), train.y[idx]
    ds = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((None, *shape), tf.uint8), tf.TensorSpec((None,), tf.int64))).prefetch(2)
    t0 = time.perf_counter()
    seen = sum(int(x.shape[0]) for x, _ in ds)
else:
    files = sorted(str(p) for p in __import__("pathlib").Path(shards).glob("*.tfrecord"))
    spec = {"x": tf.io.FixedLenFeature([], tf.string), "y": tf.io.FixedLenFeature([], tf.int64)}
    def parse(example):
        e = tf.io.parse_single_example(example, spec)
        return tf.reshape(tf.io.decode_raw(e["x"], tf.uint8), shape), e["y"]
    ds = (tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=0)
          .interleave(tf.data.TFRecordDataset, cycle_length=4, num_parallel_calls=tf.data.AUTOTUNE)
          .shuffle(10000, seed=0).map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(128).prefetch(2))
    t0 = time.perf_counter()
    seen = sum(int(x.shape[0]) for x, _ in ds)
print(json.dumps({"images": seen, "seconds": time.perf_counter() - t0}))
"""

WRITE = """
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
from imagedata.dataset import load_dataset
from imagedata.preprocess import Preprocessing
data, resolution, out, shards = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
train = load_dataset(data, Preprocessing(resolution=resolution, channels=3), skip_bad_images=True).train
t0 = time.perf_counter()
per = -(-len(train) // shards)
for s in range(shards):
    with tf.io.TFRecordWriter(f"{out}/{s:03d}.tfrecord") as w:
        for i in range(s * per, min(len(train), (s + 1) * per)):
            x = train.batch(np.array([i]))[0]
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "x": tf.train.Feature(bytes_list=tf.train.BytesList(value=[x.tobytes()])),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(train.y[i])]))})).SerializeToString())
print(time.perf_counter() - t0)
"""


@click.command()
@click.argument("data", type=click.Path(file_okay=False, exists=True))
@click.option("--resolution", default=96, show_default=True)
@click.option("--shards", default=16, show_default=True)
def main(data, resolution, shards):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    py = sys.executable
    print(f"load average {os.getloadavg()[0]:.1f} at the start (timings on a shared machine are under it)")
    with tempfile.TemporaryDirectory(dir=Path(data).parent) as out:
        _, _, written, _ = run_child([py, "-c", WRITE, data, str(resolution), out, str(shards)], env)
        size = sum(f.stat().st_size for f in Path(out).iterdir())
        print(f"TFRecord: {shards} shards, {mib(size)}, written in {float(written):.1f} s")
        for way in ("batch", "generator", "tfrecord"):
            _, rss, stdout, _ = run_child([py, "-c", READ, way, data, str(resolution), out], env)
            r = json.loads(stdout)
            print(f"{way:>9}: one shuffled epoch of {r['images']} images in {r['seconds']:.1f} s "
                  f"({r['images'] / r['seconds']:,.0f} images/s), peak RSS {mib(rss)}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
