"""Tiny models and data for the quantize and export tests.

The architecture is the default one (MobileNetV2 0.35 at 32 px, so the int8
conversion meets the real op set: PAD, DEPTHWISE_CONV_2D, ADD, MEAN...) with
4 classes on the quadrant-blob task of tests/conftest.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from imagedata.dataset import Dataset, Split
from imagedata.preprocess import Preprocessing
from tests.conftest import make_blobs
from train.config import TrainConfig

RES, CLASSES = 32, 4
LABELS = [f"c{i}" for i in range(CLASSES)]
# bn_momentum 0.8: the moving statistics must settle within the ~60 steps of a tiny run.
CFG = TrainConfig(arch="v2", alpha=0.35, resolution=RES, channels=1, epochs=5, batch_size=32,
                  warmup_epochs=0.5, bn_momentum=0.8, augment=False, data="blobs")


def blob_dataset(n_train=384, n_each=96, resolution=RES, channels=1, n_calibration=None,
                 dark_calibration=False) -> Dataset:
    """Train/val/calibration/test splits of the blob task. ``dark_calibration`` scales the
    calibration images to pixels <= 100, so a test can tell which split calibrated."""
    n_cal = n_each if n_calibration is None else n_calibration
    x, y = make_blobs(n_train + 2 * n_each + n_cal, resolution, channels, CLASSES, seed=3)
    s = lambda a, b: Split(x[a:b], y[a:b])  # noqa: E731
    cal = s(n_train + n_each, n_train + n_each + n_cal)
    if dark_calibration:
        cal = Split((cal.x.astype(np.float32) * (100 / 255)).astype(np.uint8), cal.y)
    return Dataset(list(LABELS), s(0, n_train), s(n_train, n_train + n_each), cal,
                   s(n_train + n_each + n_cal, n_train + 2 * n_each + n_cal),
                   Preprocessing(resolution=resolution, channels=channels), {"name": "blobs"})


def write_source(out: Path, model, config: TrainConfig = CFG, labels=LABELS,
                 preprocessing: Preprocessing | None = None) -> Path:
    """OUT/model.keras plus a model.json shaped like the one train writes."""
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    p = preprocessing or Preprocessing(resolution=config.resolution, channels=config.channels)
    record = {"artifact": "model.keras", "config": config.to_dict(), "labels": list(labels),
              "preprocessing": p.to_dict(), "data": {"name": config.data},
              "model": {"input_shape": list(p.input_shape), "classes": len(labels),
                        "params": model.count_params(), "macs": 0},
              "val_top1": None, "test_top1": None, "versions": {}}
    (out / "model.json").write_text(json.dumps(record))
    return out / "model.keras"


def untrained(classes=CLASSES, config: TrainConfig = CFG):
    from train.fit import build_model
    return build_model(config, classes)


def blob_folder(root: Path, per_class=40, resolution=RES) -> Path:
    """root/c<k>/<i>.png, grayscale blob images: data a CLI can load by path."""
    x, y = make_blobs(per_class * CLASSES, resolution, 1, CLASSES, seed=5)
    for i, (im, k) in enumerate(zip(x, y)):
        d = root / LABELS[int(k)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im[..., 0]).save(d / f"{i}.png")
    return root
