"""A tiny model that plain per-tensor int8 breaks on purpose, for the debug and budget tests.

conv1 -> conv2 -> conv3 -> pool -> dense, trained on the blob task, then
rewritten without changing its float function: conv2's output channel 0 is
multiplied by 1000 (weights and bias; ReLU is positively homogeneous) and
conv3's weights reading that channel divided by 1000. conv2's activation then
spans a range 1000x wider than its other channels need, so int8 rounds those
channels to zero, and conv3's per-tensor weights for channel 0 round to zero
too: the float model is unchanged, full int8 falls to chance.
"""
from __future__ import annotations

import numpy as np

from tests.quantize import tiny

OUTLIER = 1000.0
WIDE = "conv2"          # the layer whose activation has the wide range
READS_WIDE = "conv3"    # the layer that reads it


def model(ds, epochs=8, seed=0, flat_logits=False):
    """The trained, then outlier-rewritten, Keras model. ``flat_logits`` also divides the
    last layer by 1000: softmax scores then differ by less than an int8 output step (1/256)."""
    import keras
    from keras import layers
    keras.utils.set_random_seed(seed)
    inp = keras.Input((tiny.RES, tiny.RES, 1), name="input")
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv1")(inp)
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name=WIDE)(h)
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name=READS_WIDE)(h)
    h = layers.AveragePooling2D(4, name="pool")(h)
    h = layers.Flatten(name="flatten")(h)
    out = layers.Dense(tiny.CLASSES, activation="softmax", name="predictions")(h)
    m = keras.Model(inp, out)
    m.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = ds.preprocessing.normalize(ds.train.x)
    m.fit(x, ds.train.y, epochs=epochs, batch_size=32, verbose=0)
    k, b = m.get_layer(WIDE).get_weights()
    k[..., 0] *= OUTLIER
    b[0] *= OUTLIER
    m.get_layer(WIDE).set_weights([k, b])
    k, b = m.get_layer(READS_WIDE).get_weights()
    k[:, :, 0, :] /= OUTLIER
    m.get_layer(READS_WIDE).set_weights([k, b])
    if flat_logits:
        k, b = m.get_layer("predictions").get_weights()
        m.get_layer("predictions").set_weights([k / OUTLIER, b / OUTLIER])
    return m


def float_top1(m, split) -> float:
    from imagedata.preprocess import Preprocessing
    p = Preprocessing(resolution=tiny.RES, channels=1)
    return float(np.mean(m.predict(p.normalize(split.x), verbose=0).argmax(1) == split.y))
