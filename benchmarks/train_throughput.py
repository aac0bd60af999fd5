"""Training images/s of the default recipe against a plain model.fit baseline, in one run.

    .venv/bin/python benchmarks/train_throughput.py [--images 8192]

Both train the same default model (TrainConfig()) on the same Fashion-MNIST
images with the same augmentation; what differs is the input pipeline:

* tuned (what `python -m train fit` uses): images decoded and resized once,
  kept in memory as uint8; shuffled, batched (batch_size from the config),
  then augmented and normalized a whole batch at a time by a parallel map, and
  prefetched so the next batch is ready while the step runs;
* baseline: the pipeline a first attempt writes -- every epoch each 28x28
  image is resized, augmented and normalized on its own by a sequential map,
  then batched with Keras' default batch size of 32; no cache, no prefetch.

Each side runs one warm-up pass (graph tracing) and then one timed pass over
``--images`` images; the figure is images / wall seconds of the timed pass.
The ratio is the number that matters: machines are noisy, both run here, now.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402


@click.command()
@click.option("--images", default=8192, show_default=True, help="images per timed pass")
def main(images):
    import keras
    import numpy as np
    import tensorflow as tf

    from imagedata import fashion_mnist
    from imagedata.dataset import load_dataset
    from train.config import TrainConfig
    from train.fit import TRANSLATE, build_model, compile_model, preprocessing_for, tf_dataset

    config = TrainConfig()
    p = preprocessing_for(config)
    ds = load_dataset("fashion_mnist", p)
    train = ds.train.take(images)
    raw, _ = fashion_mnist.load()
    raw_x, raw_y = raw["x_train"][:images], raw["y_train"][:images].astype(np.int64)

    def measure(name, dataset, steps_per_epoch):
        keras.utils.set_random_seed(0)
        model = build_model(config, len(ds.labels))
        compile_model(model, config, steps_per_epoch)
        model.fit(dataset.take(min(steps_per_epoch, 5)), epochs=1, verbose=0)   # trace
        t0 = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0)
        rate = steps_per_epoch * (images // steps_per_epoch) / (time.perf_counter() - t0)
        print(f"{name:<9} {rate:8.0f} images/s")
        return rate

    tuned = measure("tuned", tf_dataset(train, p, 10, config.batch_size, True, config.augment, 0),
                    images // config.batch_size)

    flip = keras.layers.RandomFlip("horizontal")
    shift = keras.layers.RandomTranslation(TRANSLATE, TRANSLATE, fill_mode="constant")

    def per_image(x, y):
        x = tf.image.resize(tf.cast(x[..., None], tf.float32), (p.resolution, p.resolution))
        x = shift(flip(x[None], training=True), training=True)[0]
        return (x - p.mean) / p.std, tf.one_hot(y, 10)

    plain = tf.data.Dataset.from_tensor_slices((raw_x, raw_y)).shuffle(images).map(per_image).batch(32)
    baseline = measure("baseline", plain, images // 32)
    print(f"ratio     {tuned / baseline:8.2f}x  ({config.arch.value}-{config.alpha:g} at {config.resolution} px, "
          f"batch {config.batch_size} vs 32, {os.cpu_count()} cores, TensorFlow {tf.__version__})")


if __name__ == "__main__":
    main()
