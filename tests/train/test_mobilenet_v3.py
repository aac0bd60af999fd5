"""MobileNet V3 against keras.applications itself: same layers, names, shapes, and function."""
import numpy as np
import pytest

from train.config import TrainConfig
from train.fit import build_model


def _reference(arch, **kw):
    """keras.applications' network in a fresh session, so its counter names start at zero."""
    import keras
    keras.backend.clear_session()
    app = keras.applications.MobileNetV3Small if arch == "v3-small" else keras.applications.MobileNetV3Large
    return app(weights=None, **kw)


def _layers(model):
    """(name, output shape, weight shapes) per layer, the input layer left out (keras names it
    input_layer, this project input)."""
    return [(layer.name, tuple(layer.output.shape), [tuple(w.shape) for w in layer.weights])
            for layer in model.layers if type(layer).__name__ != "InputLayer"]


@pytest.mark.parametrize("arch", ["v3-small", "v3-large"])
@pytest.mark.parametrize("minimalistic", [False, True])
def test_layers_match_keras_applications_at_224(arch, minimalistic):
    ours = build_model(TrainConfig(arch=arch, alpha=1.0, resolution=224, channels=3,
                                   minimalistic=minimalistic), classes=1000)
    ref = _reference(arch, input_shape=(224, 224, 3), minimalistic=minimalistic, include_top=False,
                     include_preprocessing=False)
    top = _layers(ours)[len(ref.layers) - 1:]   # the classifier keras leaves out with include_top=False
    assert _layers(ours)[:len(ref.layers) - 1] == _layers(ref)
    assert [name for name, _, _ in top][-3:] == ["logits", "flatten", "predictions"]
    assert top[-1][1] == (None, 1000)


@pytest.mark.slow
@pytest.mark.parametrize("arch, alpha, minimalistic", [("v3-small", 0.75, False), ("v3-large", 0.75, False),
                                                       ("v3-large", 1.25, True), ("v3-small", 0.35, True)])
def test_other_widths_and_the_top_match(arch, alpha, minimalistic):
    """With the classifier (dropout 0.2, as keras' default) and at widths other than 1."""
    ours = build_model(TrainConfig(arch=arch, alpha=alpha, resolution=224, channels=3, dropout=0.2,
                                   minimalistic=minimalistic), classes=1000)
    ref = _reference(arch, input_shape=(224, 224, 3), alpha=alpha, minimalistic=minimalistic,
                     include_preprocessing=False)
    assert _layers(ours) == _layers(ref)


def test_names_do_not_depend_on_what_was_built_before():
    cfg = TrainConfig(arch="v3-small", alpha=0.5, resolution=32, channels=1)
    first, second = build_model(cfg, 4), build_model(cfg, 4)
    names = [layer.name for layer in first.layers]
    assert names == [layer.name for layer in second.layers]
    assert {"activation", "activation_1", "re_lu", "re_lu_1"} <= set(names)


@pytest.mark.slow
def test_same_function_as_keras_with_its_rescaling():
    """Weights copied by name give the same outputs: our (pixel - 127.5) / 127.5 outside the
    model is keras.applications' Rescaling inside it."""
    ours = build_model(TrainConfig(arch="v3-large", alpha=0.75, resolution=64, channels=3), classes=10)
    ref = _reference("v3-large", input_shape=(64, 64, 3), alpha=0.75, classes=10, dropout_rate=0.0)
    by_name = {layer.name: layer for layer in ref.layers}
    rng = np.random.default_rng(0)
    copied = 0
    for layer in ours.layers:
        if layer.weights:
            w = [rng.normal(0, 0.1, tuple(v.shape)).astype("float32") for v in layer.weights]
            if type(layer).__name__ == "BatchNormalization":
                w[3] = np.abs(w[3]) + 0.5   # moving variance
            layer.set_weights(w)
            by_name[layer.name].set_weights(w)
            copied += 1
    assert copied == sum(1 for layer in ref.layers if layer.weights)
    pixels = rng.integers(0, 256, (4, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict((pixels - 127.5) / 127.5, verbose=0),
                               ref.predict(pixels, verbose=0), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("output_stride, final", [(32, 1), (16, 2), (8, 4), (4, 8)])
def test_output_stride_runs_the_last_reductions_at_stride_1(output_stride, final):
    cfg = TrainConfig(arch="v3-large", alpha=0.5, resolution=32, channels=1, output_stride=output_stride)
    m = build_model(cfg, classes=10)
    assert tuple(m.get_layer("conv_1").output.shape[1:3]) == (final, final)
    published = build_model(cfg.replace(output_stride=32), classes=10)
    kept = [layer.name for layer in m.layers]
    # The same layers as the published network, minus the paddings of the blocks now at stride 1.
    assert kept == [layer.name for layer in published.layers
                    if layer.name in kept or not layer.name.endswith("depthwise_pad")]
    assert m.count_params() == published.count_params()


@pytest.mark.slow
def test_saved_model_round_trips(tmp_path):
    import keras
    m = build_model(TrainConfig(arch="v3-small", alpha=0.5, resolution=32, channels=1), classes=4)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 1)).astype("float32")
    m.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), m.predict(x, verbose=0))
