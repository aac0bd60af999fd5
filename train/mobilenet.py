"""MobileNet V1 and V2 builders with keras.applications' layer names (V3: ``train.mobilenet_v3``).

    python -m train profile --arch v2 --alpha 1.0 --resolution 224 --classes 1000

The graphs match keras.applications layer for layer (same names, same
padding) so that ImageNet weights load by name and per-layer reports read the
same in Keras and in the .tflite. Two things differ on purpose:

* ``bn_momentum``: keras.applications uses 0.999, which after a short run from
  scratch leaves the moving statistics near their initial values and test
  accuracy at chance while training accuracy is high. TrainConfig uses 0.99.
* ``output_stride``: the standard networks halve the resolution five times
  (output_stride 32), which takes a 32 px image to 1x1 and leaves the last
  blocks nothing spatial to work on. output_stride 16 runs the last stride-2
  stage at stride 1, 8 the last two, and so on. 32 is the published network.
"""
from __future__ import annotations

import keras
from keras import layers

from train.config import OUTPUT_STRIDES


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Channel rounding used by MobileNetV2 (never more than 10% below v)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# (pointwise filters, stride) for the 13 depthwise-separable blocks of V1.
V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]

# (expansion t, output channels c, repeats n, first stride s) from the V2 paper, table 2.
V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

def _strides(n_reductions: int, output_stride: int) -> list[int]:
    """Strides of the n stride-2 stages when the network must end at input/output_stride.

    The standard networks reduce 5 times (output_stride 32). As in DeepLab, a
    smaller output_stride runs the *last* reductions at stride 1: the early,
    high-resolution layers keep their cost, and the deep, wide layers see a
    larger feature map. (Skipping the first reductions instead measured 3-4x
    slower to train here: TensorFlow's depthwise backprop is slow at 32x32.)
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
    skipped = OUTPUT_STRIDES.index(output_stride)
    return [2 if i < n_reductions - skipped else 1 for i in range(n_reductions)]


def correct_pad(size, kernel: int) -> tuple:
    """keras.applications' padding before a stride-2 'valid' convolution: kernel // 2 on
    each side, one pixel less on the top/left of an even (or unknown) size."""
    adjust = [1 - (d % 2) if d is not None else 1 for d in size]
    half = kernel // 2
    return ((half - adjust[0], half), (half - adjust[1], half))


def _bn(x, name, momentum):
    return layers.BatchNormalization(epsilon=1e-3, momentum=momentum, name=name)(x)


def mobilenet_v1(input_shape, classes, alpha=1.0, dropout=1e-3, bn_momentum=0.9,
                 output_stride=32, name=None) -> keras.Model:
    strides = iter(_strides(5, output_stride))   # stem + 4 stride-2 blocks
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(int(32 * alpha), 3, strides=next(strides), padding="same",
                      use_bias=False, name="conv1")(inputs)
    x = _bn(x, "conv1_bn", bn_momentum)
    x = layers.ReLU(6.0, name="conv1_relu")(x)
    for block_id, (filters, stride) in enumerate(V1_BLOCKS, start=1):
        if stride == 2:
            stride = next(strides)
        if stride == 2:
            x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid",
                                   use_bias=False, name=f"conv_dw_{block_id}")(x)
        x = _bn(x, f"conv_dw_{block_id}_bn", bn_momentum)
        x = layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
        x = layers.Conv2D(int(filters * alpha), 1, padding="same", use_bias=False,
                          name=f"conv_pw_{block_id}")(x)
        x = _bn(x, f"conv_pw_{block_id}_bn", bn_momentum)
        x = layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)
    x = layers.GlobalAveragePooling2D(keepdims=True, name="global_average_pooling2d")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Conv2D(classes, 1, padding="same", name="conv_preds")(x)
    x = layers.Reshape((classes,), name="reshape_2")(x)
    outputs = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name or f"mobilenet_v1_{alpha:g}")


def _inverted_res_block(x, expansion, filters, alpha, stride, block_id, bn_momentum):
    in_channels = x.shape[-1]
    pointwise_filters = make_divisible(int(filters * alpha), 8)
    inputs = x
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, 1, padding="same", use_bias=False,
                          name=prefix + "expand")(x)
        x = _bn(x, prefix + "expand_BN", bn_momentum)
        x = layers.ReLU(6.0, name=prefix + "expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(correct_pad(x.shape[1:3], 3), name=prefix + "pad")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid",
                               use_bias=False, name=prefix + "depthwise")(x)
    x = _bn(x, prefix + "depthwise_BN", bn_momentum)
    x = layers.ReLU(6.0, name=prefix + "depthwise_relu")(x)
    x = layers.Conv2D(pointwise_filters, 1, padding="same", use_bias=False, name=prefix + "project")(x)
    x = _bn(x, prefix + "project_BN", bn_momentum)
    if in_channels == pointwise_filters and stride == 1:
        x = layers.Add(name=prefix + "add")([inputs, x])
    return x


def mobilenet_v2(input_shape, classes, alpha=1.0, dropout=0.2, bn_momentum=0.9,
                 output_stride=32, name=None) -> keras.Model:
    strides = iter(_strides(5, output_stride))   # stem + 4 stride-2 stages
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(make_divisible(32 * alpha, 8), 3, strides=next(strides),
                      padding="same", use_bias=False, name="Conv1")(inputs)
    x = _bn(x, "bn_Conv1", bn_momentum)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    block_id = 0
    for t, c, n, s in V2_STAGES:
        for i in range(n):
            stride = next(strides) if (i == 0 and s == 2) else 1
            x = _inverted_res_block(x, t, c, alpha, stride, block_id, bn_momentum)
            block_id += 1
    last = make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last, 1, use_bias=False, name="Conv_1")(x)
    x = _bn(x, "Conv_1_bn", bn_momentum)
    x = layers.ReLU(6.0, name="out_relu")(x)
    x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name or f"mobilenet_v2_{alpha:g}")
