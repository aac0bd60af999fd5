"""Train a MobileNet and write ``model.keras`` with its provenance in ``model.json``.

    python -m train fit --arch v1 --alpha 0.5 --resolution 32 --out build/

The recipe (defaults in ``TrainConfig``): AdamW with a linear warm-up to the
peak learning rate and cosine decay to zero, random flips and translations,
BatchNorm momentum 0.99. Label smoothing and dropout are available but off:
in 21 epochs on two cores the model still underfits (training top-1 stays
below validation top-1), so more regularization only slows it down. Decoded images sit in memory as
uint8 and the tf.data pipeline augments whole batches in parallel with the
training step (prefetch), so the CPU cores spend their time in convolutions.

Checkpoints live in ``OUT/train/``: ``last.keras`` (model and optimizer state)
after every epoch and ``best.keras`` by validation top-1, both written under a
temporary name and renamed. ``--resume`` continues from ``last.keras``.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from imagedata.dataset import Dataset, Split, load_dataset
from imagedata.preprocess import Preprocessing
from train.config import Arch, TrainConfig, Weights

MODEL_FILE = "model.keras"
MODEL_JSON = "model.json"
CKPT_DIR = "train"
# Random shifts, a fraction of the side: 2 px at 32. Fashion-MNIST items are centred.
TRANSLATE = 0.0625


class ResumeError(RuntimeError):
    pass


def preprocessing_for(config: TrainConfig) -> Preprocessing:
    return Preprocessing(resolution=config.resolution, channels=config.channels)


def build_model(config: TrainConfig, classes: int):
    from train.mobilenet import mobilenet_v1, mobilenet_v2
    from train.mobilenet_v3 import mobilenet_v3_large, mobilenet_v3_small
    builder = {Arch.V1: mobilenet_v1, Arch.V2: mobilenet_v2,
               Arch.V3_SMALL: mobilenet_v3_small, Arch.V3_LARGE: mobilenet_v3_large}[config.arch]
    v3 = {"minimalistic": config.minimalistic} if config.arch.v3 else {}
    model = builder((config.resolution, config.resolution, config.channels), classes,
                    alpha=config.alpha, dropout=config.dropout, bn_momentum=config.bn_momentum,
                    output_stride=config.output_stride, **v3)
    if config.weights is Weights.IMAGENET:
        load_imagenet_weights(model, config)
    return model


def load_imagenet_weights(model, config: TrainConfig) -> int:
    """Copy keras.applications' ImageNet weights into ``model`` by layer name.

    Every layer except the classifier has the same name and shape in both, so
    only the top is new. V3's top holds conv_2 (the 1x1 convolution after the
    pooling), so its weights come from the full model and only ``logits`` is
    new. Needs network access for the download. Returns the number of layers loaded.
    """
    import keras
    a = keras.applications
    app = {Arch.V1: a.MobileNet, Arch.V2: a.MobileNetV2,
           Arch.V3_SMALL: a.MobileNetV3Small, Arch.V3_LARGE: a.MobileNetV3Large}[config.arch]
    top = ({"include_top": True, "minimalistic": config.minimalistic, "include_preprocessing": False}
           if config.arch.v3 else {"include_top": False})
    shape = (config.resolution, config.resolution, 3)
    reference = app(input_shape=shape, alpha=config.alpha, weights="imagenet", **top)
    by_name = {layer.name: layer for layer in reference.layers}
    loaded = 0
    for layer in model.layers:
        ref = by_name.get(layer.name)
        if ref is None or not layer.weights:
            continue
        if [w.shape for w in ref.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(ref.get_weights())
            loaded += 1
    return loaded


def tf_dataset(split: Split, p: Preprocessing, classes: int, batch_size: int,
               training: bool, augment: bool, seed: int):
    """uint8 (N, H, W, C) in memory -> batches of (float input, one-hot label)."""
    import keras
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((split.x, split.y))
    if training:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training)
    flip = keras.layers.RandomFlip("horizontal", seed=seed)
    shift = keras.layers.RandomTranslation(TRANSLATE, TRANSLATE, fill_mode="constant", seed=seed + 1)
    mean, std = float(p.mean), float(p.std)

    def prepare(x, y):
        x = tf.cast(x, tf.float32)
        if training and augment:
            x = shift(flip(x, training=True), training=True)
        return (x - mean) / std, tf.one_hot(y, classes)

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def compile_model(model, config: TrainConfig, steps_per_epoch: int):
    import keras
    total = steps_per_epoch * config.epochs
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 100, decay_steps=max(total - warmup, 1),
        alpha=0.0, warmup_target=config.learning_rate, warmup_steps=warmup)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


def _save_atomic(model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".partial.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _write_json_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _checkpoint_callback(ckpt: Path, state: dict):
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        """last.keras every epoch, best.keras on a new best val top-1, state.json last."""

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            logs["seconds"] = time.perf_counter() - self._t0
            state["history"].append({"epoch": epoch + 1, **logs})
            _save_atomic(self.model, ckpt / "last.keras")
            if logs.get("val_accuracy", -1) > state["best_val_top1"]:
                state["best_val_top1"] = logs["val_accuracy"]
                state["best_epoch"] = epoch + 1
                _save_atomic(self.model, ckpt / "best.keras")
            state["epochs_done"] = epoch + 1
            _write_json_atomic(state, ckpt / "state.json")

    return EpochCheckpoint()


def versions() -> dict:
    import keras
    import tensorflow as tf
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__}


def machine() -> dict:
    from android_bench.device.fingerprint import cpu_model   # the device runner reads it the same way
    return {"hostname": platform.node(), "machine": platform.machine(),
            "cpu": cpu_model() or platform.processor(), "cores": os.cpu_count(),
            "os": platform.platform()}


def run(config: TrainConfig, out: Path, resume: bool = False, dataset: Dataset | None = None,
        cache_dir=None, skip_bad_images: bool = False, verbose: int | None = None) -> dict:
    """Train, keep the best checkpoint, evaluate it on test, write model.keras + model.json.

    ``dataset`` skips loading (tests pass tiny ones). Returns the model.json dict.
    """
    import keras
    from tqdm import tqdm

    from train.profile import profile_model

    out = Path(out)
    ckpt = out / CKPT_DIR
    ckpt.mkdir(parents=True, exist_ok=True)
    p = preprocessing_for(config)
    t_start = time.perf_counter()
    if dataset is None:
        dataset = load_dataset(config.data, p, seed=config.seed, cache_dir=cache_dir,
                               skip_bad_images=skip_bad_images, progress=tqdm)
    classes = len(dataset.labels)
    keras.utils.set_random_seed(config.seed)
    steps = len(dataset.train) // config.batch_size
    if steps < 1:
        raise ValueError(f"batch_size {config.batch_size} is larger than the training split "
                         f"({len(dataset.train)} images); lower --batch-size")

    state = {"config": config.to_dict(), "history": [], "best_val_top1": -1.0,
             "best_epoch": 0, "epochs_done": 0}
    if resume:
        state_path = ckpt / "state.json"
        if not (ckpt / "last.keras").exists() or not state_path.exists():
            raise ResumeError(f"nothing to resume in {ckpt}: no last.keras/state.json "
                              f"(run without --resume to start fresh)")
        saved = json.loads(state_path.read_text())
        if saved["config"] != config.to_dict():
            diff = {k: (saved["config"].get(k), v) for k, v in config.to_dict().items()
                    if saved["config"].get(k) != v}
            raise ResumeError(f"the checkpoint in {ckpt} was trained with another config "
                              f"(saved, now): {diff}; run without --resume to start fresh")
        state = saved
        model = keras.models.load_model(ckpt / "last.keras")
        print(f"resuming after epoch {state['epochs_done']} of {config.epochs} "
              f"(best val top-1 so far {state['best_val_top1']:.4f})")
    else:
        for f in ("last.keras", "best.keras", "state.json"):
            (ckpt / f).unlink(missing_ok=True)
        model = build_model(config, classes)
        compile_model(model, config, steps)

    train_ds = tf_dataset(dataset.train, p, classes, config.batch_size, True, config.augment, config.seed)
    val_ds = tf_dataset(dataset.val, p, classes, 256, False, False, config.seed)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    t_fit = time.perf_counter()
    if state["epochs_done"] < config.epochs:
        model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, shuffle=False,  # tf.data shuffles
                  initial_epoch=state["epochs_done"], verbose=verbose,
                  callbacks=[_checkpoint_callback(ckpt, state)])
    fit_seconds = time.perf_counter() - t_fit

    best = keras.models.load_model(ckpt / "best.keras")
    test_ds = tf_dataset(dataset.test, p, classes, 256, False, False, config.seed)
    _, test_top1 = best.evaluate(test_ds, verbose=0)
    trained_epochs = len(state["history"])
    timed = [h["seconds"] for h in state["history"]]
    prof = profile_model(best)
    record = {
        "artifact": MODEL_FILE,
        "config": config.to_dict(),
        "labels": dataset.labels,
        "preprocessing": p.to_dict(),
        "data": dataset.describe(),
        "model": {"input_shape": list(p.input_shape), "classes": classes,
                  "params": prof["params"], "macs": prof["macs"]},
        "history": state["history"],
        "best_epoch": state["best_epoch"],
        "val_top1": state["best_val_top1"],
        "test_top1": float(test_top1),
        "timing": {"total_seconds": time.perf_counter() - t_start,
                   "fit_seconds_this_run": fit_seconds,
                   "train_images_per_second": (len(dataset.train) // config.batch_size * config.batch_size
                                               * trained_epochs / sum(timed)) if timed else None},
        "versions": versions(),
        "machine": machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _save_atomic(best, out / MODEL_FILE)
    _write_json_atomic(record, out / MODEL_JSON)
    return record
