"""Starting weights for ``fit``: keras.applications' ImageNet weights, or a local file.

    loaded = load_weights(model, config)   # {"source", "sha256", "layers_loaded", ...}

Weights are copied layer by layer where the name (and the shape of every variable)
match. The builders use keras.applications' layer names, so ImageNet weights, a
model trained earlier by ``train fit``, or any Keras MobileNet of the same kind
load into everything but a classifier with another number of classes, which
starts fresh. Offline, fetch the weights where there is network and copy the file:

    keras.applications.MobileNetV2(alpha=0.35, include_top=False, input_shape=(96, 96, 3))
        .save("mobilenet_v2_0.35_96.keras")

A ``.weights.h5`` holds no layer names (Keras 3 keys each layer by its type and
position, ``conv2d_3``), so it loads by that key: it must come from the same
architecture, built the same way. A ``.keras`` carries names and loads by them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from train.config import Arch, TrainConfig, Weights


class WeightsError(ValueError):
    pass


def _flat_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):     # a nested model
            yield from _flat_layers(layer)
        else:
            yield layer


def _h5_keys(model) -> dict:
    """Our layers by the key Keras 3 gives them in a .weights.h5 (saving_lib's naming)."""
    from keras.src.utils.naming import to_snake_case
    used, keys = {}, {}
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        n = used.get(base, -1) + 1
        used[base] = n
        keys[base if n == 0 else f"{base}_{n}"] = layer
    return keys


def _copy(pairs, source: str) -> dict:
    """Copy (layer, [arrays] or None) pairs where every shape matches."""
    loaded, skipped = [], []
    for layer, arrays in pairs:
        if not layer.weights:
            continue
        want = [tuple(w.shape) for w in layer.weights]
        got = None if arrays is None else [tuple(a.shape) for a in arrays]
        if got == want:
            layer.set_weights(arrays)
            loaded.append(layer.name)
        else:
            skipped.append({"layer": layer.name, "here": want, "file": got})
    if not loaded:
        raise WeightsError(f"no layer of '{source}' matches this model by name and shape: it is another "
                           f"architecture (check --arch, --alpha and --channels)")
    return {"layers_loaded": len(loaded), "layers_with_weights": len(loaded) + len(skipped),
            "skipped": skipped}


def _from_keras_file(model, path: Path) -> dict:
    import keras
    try:
        source = keras.models.load_model(path, compile=False)
    except Exception as e:   # keras raises ValueError, OSError, zip errors... for a bad file
        raise WeightsError(f"cannot load weights file '{path}': {e}") from None
    by_name = {layer.name: layer.get_weights() for layer in _flat_layers(source)}
    return _copy(((layer, by_name.get(layer.name)) for layer in _flat_layers(model)), str(path))


def _from_weights_h5(model, path: Path) -> dict:
    import h5py
    try:
        with h5py.File(path, "r") as f:
            if "layers" not in f:
                raise WeightsError(f"'{path}' is not a Keras 3 .weights.h5 file (no 'layers' group)")
            stored = {key: [np.asarray(g["vars"][str(i)]) for i in range(len(g["vars"]))]
                      for key, g in f["layers"].items() if "vars" in g}
    except OSError as e:
        raise WeightsError(f"cannot read weights file '{path}': {e}") from None
    return _copy(((layer, stored.get(key)) for key, layer in _h5_keys(model).items()), str(path))


def _imagenet(model, config: TrainConfig) -> dict:
    """keras.applications' ImageNet weights by layer name. V3's top holds conv_2 (the 1x1
    convolution after the pooling), so V3 takes the full model and only ``logits`` is new."""
    import keras
    a = keras.applications
    app = {Arch.V1: a.MobileNet, Arch.V2: a.MobileNetV2,
           Arch.V3_SMALL: a.MobileNetV3Small, Arch.V3_LARGE: a.MobileNetV3Large}[config.arch]
    top = ({"include_top": True, "minimalistic": config.minimalistic, "include_preprocessing": False}
           if config.arch.v3 else {"include_top": False})
    reference = app(input_shape=(config.resolution, config.resolution, 3), alpha=config.alpha,
                    weights="imagenet", **top)
    by_name = {layer.name: layer.get_weights() for layer in reference.layers}
    return _copy(((layer, by_name.get(layer.name)) for layer in model.layers), "imagenet")


def weights_file(config: TrainConfig) -> Path | None:
    """The file ``config.weights`` names, checked to exist; None for none and imagenet."""
    if config.weights in [w.value for w in Weights]:
        return None
    path = Path(config.weights)
    if not path.is_file():
        raise WeightsError(f"weights file '{path}' does not exist (--weights takes none, imagenet, or a "
                           f".keras or .weights.h5 file)")
    return path


def load_weights(model, config: TrainConfig) -> dict | None:
    """Load ``config.weights`` into ``model``; returns what model.json records, None from scratch."""
    if config.weights == Weights.NONE.value:
        return None
    if config.weights == Weights.IMAGENET.value:
        return {"source": "imagenet", **_imagenet(model, config)}
    from quantize.files import sha256
    path = weights_file(config)
    info = _from_keras_file(model, path) if path.suffix == ".keras" else _from_weights_h5(model, path)
    return {"source": str(path.resolve()), "sha256": sha256(path), **info}


def describe(info: dict | None) -> str | None:
    """One line for the log: how many layers loaded, and which were skipped."""
    if not info:
        return None
    skipped = ", ".join(s["layer"] for s in info["skipped"][:4]) + (" ..." if len(info["skipped"]) > 4 else "")
    return (f"loaded {info['layers_loaded']} of {info['layers_with_weights']} layers with weights from "
            f"{info['source']}" + (f"; starting fresh: {skipped} (not in the file, or another shape)"
                                   if skipped else ""))
