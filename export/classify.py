"""Classify image files with a .tflite alone: its metadata says how to prepare the pixels.

    python -m export classify build/int8.tflite shirt.png

Decoding and resizing use Pillow (``imagedata.image.decode``, the same code
that prepared the training images), so this is host-side; everything after
the resize is the device code path (``android_bench.device.evaluate``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from android_bench.device.evaluate import Classifier
from android_bench.device.tflite_metadata import MetadataError
from imagedata.image import decode


def classify(model: Path, images: list[Path], top: int = 3) -> list[list[tuple[str, float]]]:
    """For each image, the ``top`` (label, score) pairs, best first."""
    clf = Classifier(str(model), batch_size=1)
    p, labels = clf.preprocessing, clf.labels
    if labels is None:
        raise MetadataError(f"'{model}' has no labels ({'; '.join(clf.missing)}): export it again")
    x = np.stack([decode(Path(f), p.resolution, p.channels, p.interpolation) for f in images])
    scores = clf.scores(x)
    return [[(labels[k], float(s[k])) for k in np.argsort(-s, kind="stable")[:top]] for s in scores]
