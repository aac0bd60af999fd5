"""The input an app feeds each variant, and the first ops that turn it into the trained model's.

    form = app_input.form(Variant.INT8, config, trained_preprocessing)
    keras_model = app_input.wrap(model, form)     # what the converter converts
    x = form.feed(images)                         # (N, H, W, C) uint8 -> that model's float input

A camera frame is RGB, uint8, batch 1; the trained model may take one channel
(Fashion-MNIST) normalized to [-1, 1]. What is put in front of it, inside the graph:

* **luminance** (``--input-color rgb``, the default, on a grayscale model): a 1x1
  convolution from RGB to Y. Its weights are 64/216, 127/216 and 25/216 (0.296,
  0.588, 0.116; ITU-R BT.601 luma is 0.299, 0.587, 0.114): int8 stores a weight
  tensor symmetrically with scale max|w| / 127, and these are exactly 64, 127
  and 25 steps of 1/216. They sum to 1, so a gray frame (R = G = B) reaches the
  trained layers as the 1-channel model would see it, in every variant, int8
  included. ``--input-color as_trained`` keeps the trained channels.
* **normalization** (the ``int8`` variant, "pixels" form): MediaPipe Tasks feeds
  raw 0-255 pixels into a uint8 input and ignores its quantization parameters.
  So the integer input *is* the pixel (scale 1, zero point 0; as int8, zero
  point -128) and (pixel - mean) / std is the scale and bias of the first
  convolution, computed in its int32 accumulator. For a grayscale model that is
  exact: the bias, -mean / std, is -27540 steps of the weight scale 1 / (216 std)
  (216 is even, so 127.5 * 216 is whole). An RGB-trained model gets a 1x1
  depthwise convolution with weight 1 / std instead, whose bias is within half
  a step (1/255 of an int8 activation step). The calibrated range of the input
  would be that of the calibration images (no 255 among them: scale != 1), so
  it is pinned to [0, 255] before quantizing (``pin_pixel_range``).

The other variants take float32 normalized the way ``imagedata/preprocess.py``
says (the consumer normalizes: the metadata's NormalizationOptions), the
convention of TFLite's float MobileNets and what GPU delegates want.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imagedata.preprocess import Preprocessing
from quantize.config import InputColor, QuantizeConfig, Variant

LUMA_STEPS = (64, 127, 25)          # R, G, B weights in steps of 1/216; see the module docstring
PIXEL_RANGE = (0.0, 255.0)


@dataclass(frozen=True)
class InputForm:
    """What one exported variant takes, and how the trained model's input is made from it."""
    trained: Preprocessing     # what the trained layers take (imagedata/preprocess.py)
    channels: int              # what the exported input takes: 3 (RGB) or the trained channels
    pixels: bool               # raw 0-255 pixels in, (pixel - mean) / std inside the graph

    @property
    def luminance(self) -> bool:
        return self.trained.channels == 1 and self.channels == 3

    @property
    def preprocessing(self) -> Preprocessing:
        """What a consumer does before the input tensor: (pixel - mean) / std, then the tensor's type."""
        mean, std = (0.0, 1.0) if self.pixels else (self.trained.mean, self.trained.std)
        return Preprocessing(resolution=self.trained.resolution, channels=self.channels, mean=mean, std=std,
                             interpolation=self.trained.interpolation)

    @property
    def in_graph(self) -> bool:
        return self.luminance or self.pixels

    def feed(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, trained channels) uint8 -> (N, H, W, channels) float32 input of ``wrap``'s model."""
        self.trained.check_images(images)
        if self.luminance:
            images = np.repeat(images, 3, axis=-1)   # a gray frame as an app would send it
        return self.preprocessing.normalize(images)

    def to_dict(self) -> dict:
        return {"channels": self.channels, "color": "rgb" if self.channels == 3 else "grayscale",
                "luminance": self.luminance, "luminance_weights": [s / sum(LUMA_STEPS) for s in LUMA_STEPS]
                if self.luminance else None, "normalization_in_graph": self.pixels,
                "preprocessing": self.preprocessing.to_dict(), "trained": self.trained.to_dict()}

    @property
    def key(self) -> tuple:
        return (self.channels, self.pixels)


def form(variant: Variant, config: QuantizeConfig, trained: Preprocessing) -> InputForm:
    channels = 3 if config.input_color is InputColor.RGB else trained.channels
    return InputForm(trained, channels, pixels=variant is Variant.INT8)


def wrap(model, f: InputForm):
    """``model`` with ``f``'s first op in front, sharing its layers (so the .tflite keeps their
    names, which per-layer reports read); ``model`` itself when nothing is needed."""
    if not f.in_graph:
        return model
    import keras
    from keras import layers

    p = f.trained
    scale, offset = (1 / p.std, -p.mean / p.std) if f.pixels else (1.0, 0.0)
    inp = keras.Input((p.resolution, p.resolution, f.channels), name="input")
    if f.luminance:
        first = layers.Conv2D(1, 1, use_bias=f.pixels, name="luminance")
        x = first(inp)
        kernel = np.array(LUMA_STEPS, np.float64).reshape(1, 1, 3, 1) / sum(LUMA_STEPS) * scale
    else:
        first = layers.DepthwiseConv2D(1, name="normalize")
        x = first(inp)
        kernel = np.full((1, 1, f.channels, 1), scale)
    first.set_weights([kernel.astype(np.float32)]
                      + ([np.full(first.weights[1].shape, offset, np.float32)] if f.pixels else []))
    return keras.Model(inp, model.call(x), name=model.name)


def pin_pixel_range(calibrated: bytes) -> bytes:
    """A calibrated (not yet quantized) model whose input's recorded range is [0, 255]: the
    quantizer then gives the integer input scale 1, whatever pixels the calibration images held."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    g = model.subgraphs[0]
    q = g.tensors[g.inputs[0]].quantization
    if q is None or q.min is None:
        raise ValueError("the calibrated model records no range for its input: not a calibrated model")
    q.min, q.max = np.array([PIXEL_RANGE[0]], np.float32), np.array([PIXEL_RANGE[1]], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
