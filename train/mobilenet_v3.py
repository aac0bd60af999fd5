"""MobileNet V3 Small and Large builders with keras.applications' layer names.

    python -m train profile --arch v3-large --alpha 1.0 --resolution 224 --classes 1000

Howard et al., "Searching for MobileNetV3" (ICCV 2019), tables 1 and 2, as
keras.applications builds them: the same layers in the same order, under the
same names, so ``--weights imagenet`` copies keras' weights by name and a
per-layer report (profile, ``quantize debug``) names the same layers. The
differences, all on purpose:

* no ``Rescaling`` layer at the input: keras.applications maps pixels to
  [-1, 1] inside the model, this project's preprocessing
  (``imagedata.preprocess``, (pixel - 127.5) / 127.5) does the same outside it,
  so ImageNet weights see the inputs they were trained on;
* ``bn_momentum`` and ``output_stride``, as for V1 and V2 (``train.mobilenet``);
* ``dropout`` 0 builds no Dropout layer (keras.applications' default is 0.2).

keras.applications names the activation layers it does not name itself
(``re_lu``, ``re_lu_1``, ..., ``activation``, ``activation_1``, ...) from
Keras' global counters, so a model built later in the same session gets other
numbers. Here they are numbered per model, in build order, the way a fresh
session numbers keras.applications' model: the names do not depend on what
was built before. The hard sigmoid of the squeeze-and-excite gate,
ReLU6(x + 3) / 6, is written as keras.applications writes it: the ``+ 3`` and
``/ 6`` are Keras operations, not layers, and keep Keras' counter names.

``minimalistic`` is the variant keras.applications offers for DSPs and NPUs:
3x3 kernels everywhere, ReLU instead of hard-swish, no squeeze-and-excite.
"""
from __future__ import annotations

import itertools
from collections import defaultdict

import keras
from keras import layers

from train.mobilenet import _bn, _strides, correct_pad, make_divisible

# One row per inverted-residual block, from the paper's tables 1 and 2:
# (expansion, output channels, kernel, stride, squeeze-and-excite, hard-swish).
# The expansion multiplies the block's input channels (72/16 is 72 channels from 16).
# kernel 5, squeeze-and-excite and hard-swish become 3, none and ReLU in the minimalistic variant.
V3_SMALL_BLOCKS = [
    (1, 16, 3, 2, True, False),
    (72 / 16, 24, 3, 2, False, False),
    (88 / 24, 24, 3, 1, False, False),
    (4, 40, 5, 2, True, True),
    (6, 40, 5, 1, True, True),
    (6, 40, 5, 1, True, True),
    (3, 48, 5, 1, True, True),
    (3, 48, 5, 1, True, True),
    (6, 96, 5, 2, True, True),
    (6, 96, 5, 1, True, True),
    (6, 96, 5, 1, True, True),
]
V3_LARGE_BLOCKS = [
    (1, 16, 3, 1, False, False),
    (4, 24, 3, 2, False, False),
    (3, 24, 3, 1, False, False),
    (3, 40, 5, 2, True, False),
    (3, 40, 5, 1, True, False),
    (3, 40, 5, 1, True, False),
    (6, 80, 3, 2, False, True),
    (2.5, 80, 3, 1, False, True),
    (2.3, 80, 3, 1, False, True),
    (2.3, 80, 3, 1, False, True),
    (6, 112, 3, 1, True, True),
    (6, 112, 3, 1, True, True),
    (6, 160, 5, 2, True, True),
    (6, 160, 5, 1, True, True),
    (6, 160, 5, 1, True, True),
]
# Channels of the 1x1 convolution after global pooling (keras.applications' conv_2).
LAST_POINT = {"small": 1024, "large": 1280}
SE_RATIO = 0.25
STEM_CHANNELS = 16      # not scaled by alpha, as in keras.applications


class _Names:
    """Keras' automatic layer names (re_lu, re_lu_1, ...), counted per model, not per session."""

    def __init__(self):
        self._count = defaultdict(itertools.count)

    def __call__(self, base: str) -> str:
        n = next(self._count[base])
        return base if n == 0 else f"{base}_{n}"


def _activation(x, hard_swish: bool, names: _Names):
    if hard_swish:
        return layers.Activation("hard_swish", name=names("activation"))(x)
    return layers.ReLU(name=names("re_lu"))(x)


def _squeeze_excite(x, channels: int, prefix: str, names: _Names):
    """Global pool -> 1x1 conv (channels/4) -> ReLU -> 1x1 conv -> hard sigmoid, times the input."""
    s = layers.GlobalAveragePooling2D(keepdims=True, name=prefix + "squeeze_excite_avg_pool")(x)
    s = layers.Conv2D(make_divisible(channels * SE_RATIO), 1, padding="same",
                      name=prefix + "squeeze_excite_conv")(s)
    s = layers.ReLU(name=prefix + "squeeze_excite_relu")(s)
    s = layers.Conv2D(channels, 1, padding="same", name=prefix + "squeeze_excite_conv_1")(s)
    s = layers.ReLU(6.0, name=names("re_lu"))(s + 3.0) * (1.0 / 6.0)   # hard sigmoid
    return layers.Multiply(name=prefix + "squeeze_excite_mul")([x, s])


def _block(x, block_id, expansion, filters, kernel, stride, se, hard_swish, bn_momentum, names):
    in_channels = x.shape[-1]
    expanded = make_divisible(in_channels * expansion)
    prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
    shortcut = x
    if block_id:
        x = layers.Conv2D(expanded, 1, padding="same", use_bias=False, name=prefix + "expand")(x)
        x = _bn(x, prefix + "expand_bn", bn_momentum)
        x = _activation(x, hard_swish, names)
    if stride == 2:
        x = layers.ZeroPadding2D(correct_pad(x.shape[1:3], kernel), name=prefix + "depthwise_pad")(x)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same" if stride == 1 else "valid",
                               use_bias=False, name=prefix + "depthwise")(x)
    x = _bn(x, prefix + "depthwise_bn", bn_momentum)
    x = _activation(x, hard_swish, names)
    if se:
        x = _squeeze_excite(x, expanded, prefix, names)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=prefix + "project")(x)
    x = _bn(x, prefix + "project_bn", bn_momentum)
    if stride == 1 and in_channels == filters:
        x = layers.Add(name=prefix + "add")([shortcut, x])
    return x


def mobilenet_v3(size: str, input_shape, classes, alpha=1.0, minimalistic=False, dropout=0.2,
                 bn_momentum=0.9, output_stride=32, include_top=True, name=None) -> keras.Model:
    """MobileNetV3 ``size`` "small" or "large"; ``include_top=False`` ends at conv_1's activation."""
    blocks = {"small": V3_SMALL_BLOCKS, "large": V3_LARGE_BLOCKS}[size]
    names = _Names()
    strides = iter(_strides(5, output_stride))   # stem + 4 stride-2 blocks
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(STEM_CHANNELS, 3, strides=next(strides), padding="same", use_bias=False,
                      name="conv")(inputs)
    x = _bn(x, "conv_bn", bn_momentum)
    x = _activation(x, not minimalistic, names)
    for block_id, (expansion, filters, kernel, stride, se, hard_swish) in enumerate(blocks):
        if minimalistic:
            kernel, se, hard_swish = 3, False, False
        x = _block(x, block_id, expansion, make_divisible(filters * alpha), kernel,
                   next(strides) if stride == 2 else 1, se, hard_swish, bn_momentum, names)
    x = layers.Conv2D(make_divisible(x.shape[-1] * 6), 1, padding="same", use_bias=False, name="conv_1")(x)
    x = _bn(x, "conv_1_bn", bn_momentum)
    x = _activation(x, not minimalistic, names)
    if include_top:
        last = make_divisible(LAST_POINT[size] * alpha) if alpha > 1.0 else LAST_POINT[size]
        x = layers.GlobalAveragePooling2D(keepdims=True, name="global_average_pooling2d")(x)
        x = layers.Conv2D(last, 1, padding="same", name="conv_2")(x)
        x = _activation(x, not minimalistic, names)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(classes, 1, padding="same", name="logits")(x)
        x = layers.Flatten(name="flatten")(x)
        x = layers.Activation("softmax", name="predictions")(x)
    suffix = "_minimalistic" if minimalistic else ""
    return keras.Model(inputs, x, name=name or f"mobilenet_v3_{size}{suffix}_{alpha:g}")


def mobilenet_v3_small(input_shape, classes, **kw) -> keras.Model:
    return mobilenet_v3("small", input_shape, classes, **kw)


def mobilenet_v3_large(input_shape, classes, **kw) -> keras.Model:
    return mobilenet_v3("large", input_shape, classes, **kw)
