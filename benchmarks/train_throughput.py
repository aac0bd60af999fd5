"""Training images/s: the tuned loop against a plain model.fit, each lever on its own, in one run.

    .venv/bin/python benchmarks/train_throughput.py [--images 8192] [--repeats 2]

Every row trains the default model (TrainConfig()) from the same initial
weights on the same Fashion-MNIST training images, with flips and +-2 px shifts:

* ``plain fit``: the pipeline a first attempt writes -- every epoch each 28x28
  image is resized, augmented (keras' RandomFlip and RandomTranslation, a
  projective transform) and normalized on its own by a sequential map, batched at
  Keras' default of 32; no cache, no prefetch; ``model.fit``;
* ``fit, batch map``: the previous default: decoded uint8 images in memory,
  shuffled and batched at 128, keras' RandomFlip/RandomTranslation on the whole
  batch in a parallel map, prefetch; ``model.fit``;
* ``loop, aug in map, k=1``: ``train.loop`` (``python -m train fit``'s loop) with
  uint8 batches from ``Split.batch`` in the seeded order, flip and pad-and-crop
  shift in the tf.data map, one step per compiled call;
* ``loop, aug in step, k=1``: the same with flip and shift inside the compiled step;
* ``loop, aug in map / step, k=8``: and 8 steps per compiled call;
* ``train_on_batch``: Keras' own compiled step on one fixed, already normalized
  batch of 128, no input pipeline and no augmentation: the ceiling the loop can
  reach. The tuned loop's fraction of it is what the input side costs.

Each row is set up and warmed up (one pass: tracing, first batches) first; then
``--repeats`` rounds time one pass of ``--images`` images of every row in turn, so
that load from other processes falls on all rows alike. Reported per row: images /
wall seconds of its best pass (the least disturbed), and the CPU seconds this
process used per 1,000 images in that pass (all threads: what the work costs,
whatever else the machine runs).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402


def _keras_augment(translate: float):
    import keras
    flip = keras.layers.RandomFlip("horizontal", seed=0)
    shift = keras.layers.RandomTranslation(translate, translate, fill_mode="constant", seed=1)
    return lambda x: shift(flip(x, training=True), training=True)


@click.command()
@click.option("--images", default=8192, show_default=True, help="images per timed pass")
@click.option("--repeats", default=3, show_default=True, help="timed rounds; each row's best is shown")
def main(images, repeats):
    from train.__main__ import quiet_tensorflow
    quiet_tensorflow(0)
    import keras
    import numpy as np
    import tensorflow as tf

    from imagedata import fashion_mnist
    from imagedata.dataset import load_dataset
    from train.config import TrainConfig
    from train.fit import build_model, compile_model, preprocessing_for
    from train.loop import Loop
    from train.pipeline import EpochPlan, replica_batches

    config = TrainConfig()
    p = preprocessing_for(config)
    ds = load_dataset("fashion_mnist", p)
    train = ds.train.take(images)
    classes = len(ds.labels)
    batch = config.batch_size
    steps = images // batch
    fraction = config.translate / config.resolution
    strategy = tf.distribute.get_strategy()

    def model_for(steps_per_epoch):
        keras.utils.set_random_seed(0)
        model = build_model(config, classes)
        compile_model(model, config, steps_per_epoch)
        return model

    def fit_row(dataset, steps_per_epoch, per_step):
        model = model_for(steps_per_epoch)
        return lambda: model.fit(dataset, epochs=1, verbose=0, shuffle=False), steps_per_epoch * per_step

    def loop_row(in_step: bool, k: int):
        model = model_for(steps)
        loop = Loop(strategy, model, p, batch, augment=True, augment_in_step=in_step)
        plan = EpochPlan(len(train), config.seed, config.translate, augment=True)
        fn = replica_batches(train, plan, batch, 0, repeats + 1, steps, augment_in_data=not in_step)
        iterator = iter(strategy.distribute_datasets_from_function(fn))
        return lambda: loop.train_epoch(iterator, steps, k), steps * batch

    def train_on_batch_row():
        model = model_for(steps)
        x = p.normalize(train.x[:batch])
        y = keras.utils.to_categorical(train.y[:batch], classes)
        return lambda: [model.train_on_batch(x, y) for _ in range(steps)], steps * batch

    raw, _ = fashion_mnist.load()
    raw_x, raw_y = raw["x_train"][:images], raw["y_train"][:images].astype(np.int64)
    per_image_aug = _keras_augment(fraction)

    def per_image(x, y):
        x = tf.image.resize(tf.cast(x[..., None], tf.float32), (p.resolution, p.resolution))
        return (per_image_aug(x[None])[0] - p.mean) / p.std, tf.one_hot(y, classes)

    plain = tf.data.Dataset.from_tensor_slices((raw_x, raw_y)).shuffle(images).map(per_image).batch(32)
    batch_aug = _keras_augment(fraction)

    def batch_map(x, y):
        return (batch_aug(tf.cast(x, tf.float32)) - p.mean) / p.std, tf.one_hot(y, classes)

    mapped = (tf.data.Dataset.from_tensor_slices((train.x, train.y)).shuffle(images, seed=0)
              .batch(batch, drop_remainder=True).map(batch_map, num_parallel_calls=tf.data.AUTOTUNE)
              .prefetch(tf.data.AUTOTUNE))

    setups = {
        "plain fit": lambda: fit_row(plain, images // 32, 32),
        "fit, batch map": lambda: fit_row(mapped, steps, batch),
        "loop, aug in map, k=1": lambda: loop_row(False, 1),
        "loop, aug in step, k=1": lambda: loop_row(True, 1),
        "loop, aug in map, k=8": lambda: loop_row(False, 8),
        "loop, aug in step, k=8": lambda: loop_row(True, 8),
        "train_on_batch": train_on_batch_row,
    }
    rows = {name: setup() for name, setup in setups.items()}
    # Warm-up only now: set_random_seed, before each build, makes TensorFlow retrace the
    # functions traced before it.
    for one_pass, _ in rows.values():
        one_pass()
    best = {name: (0.0, 0.0) for name in rows}        # (images/s, CPU s per 1k images)
    for _ in range(repeats):
        for name, (one_pass, n) in rows.items():
            t0, c0 = time.perf_counter(), time.process_time()
            one_pass()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if n / wall > best[name][0]:
                best[name] = (n / wall, 1000 * cpu / n)
    from android_bench.device.fingerprint import cpu_model
    print(f"{cpu_model() or 'unknown CPU'}, {os.cpu_count()} cores; load average "
          + " ".join(f"{v:.1f}" for v in os.getloadavg()) + " at the end")
    for name, (rate, cpu) in best.items():
        print(f"{name:<24} {rate:8.0f} images/s  {cpu:6.2f} CPU s / 1k images")
    tuned = best["loop, aug in step, k=8"][0]
    print(f"tuned / plain fit        {tuned / best['plain fit'][0]:8.2f}x")
    print(f"tuned / train_on_batch   {tuned / best['train_on_batch'][0]:8.2f}  (the input pipeline's cost: 1 - this) "
          f"({config.arch.value}-{config.alpha:g} at {config.resolution} px, batch {batch}, "
          f"{os.cpu_count()} cores, TensorFlow {tf.__version__})")


if __name__ == "__main__":
    main()
