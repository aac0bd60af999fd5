"""Training on tiny data: it learns, keeps the best checkpoint, records provenance, resumes."""
import json

import numpy as np
import pytest

from imagedata.dataset import Dataset, Split
from imagedata.preprocess import Preprocessing
from tests.conftest import make_blobs
from train import fit
from train.config import TrainConfig

RES = 32


def tiny_dataset(n_train=512, classes=4, channels=1) -> Dataset:
    x, y = make_blobs(n_train + 3 * 128, RES, channels, classes)
    s = lambda a, b: Split(x[a:b], y[a:b])  # noqa: E731
    return Dataset([f"c{i}" for i in range(classes)], s(0, n_train), s(n_train, n_train + 128),
                   s(n_train + 128, n_train + 256), s(n_train + 256, n_train + 384),
                   Preprocessing(resolution=RES, channels=channels), {"name": "blobs"})


# bn_momentum 0.5: in 48 steps the weights move so fast that even 0.9's moving statistics lag
# behind them and evaluation sits at chance (measured: 27% at 0.9, 98% at 0.5).
CFG = TrainConfig(arch="v1", alpha=0.25, resolution=RES, channels=1, epochs=3, batch_size=32,
                  learning_rate=3e-3, warmup_epochs=0.5, bn_momentum=0.5, data="blobs", augment=False)


@pytest.mark.slow
def test_learns_and_writes_model_with_provenance(tmp_path):
    rec = fit.run(CFG, tmp_path, dataset=tiny_dataset(), verbose=0)
    assert rec["test_top1"] > 0.9, rec["history"]
    assert (tmp_path / "model.keras").exists() and not list(tmp_path.rglob("*.partial*"))
    saved = json.loads((tmp_path / "model.json").read_text())
    assert saved["config"] == CFG.to_dict()
    assert saved["preprocessing"] == {"resolution": 32, "channels": 1, "mean": 127.5, "std": 127.5,
                                      "interpolation": "bilinear"}
    assert saved["labels"] == ["c0", "c1", "c2", "c3"]
    assert len(saved["history"]) == 3 and saved["history"][-1]["loss"] < saved["history"][0]["loss"]
    assert saved["val_top1"] == max(h["val_accuracy"] for h in saved["history"])
    assert {"tensorflow", "keras", "numpy", "python"} <= set(saved["versions"])
    assert saved["model"]["macs"] > 0 and saved["timing"]["train_images_per_second"] > 0
    assert saved["resumed_after_epochs"] == [] and saved["weights"] is None
    assert saved["distribution"] == {"strategy": "default", "workers": 1, "task": "local", "replicas": 1,
                                     "devices": ["/cpu:0"], "global_batch": 32, "steps_per_epoch": 16,
                                     "peak_learning_rate": 3e-3}
    state = json.loads((tmp_path / "train" / "state.json").read_text())
    assert state["epochs_done"] == 3 and state["run_id"] == saved["run_id"]

    import keras
    best = keras.models.load_model(tmp_path / "model.keras")
    ds = tiny_dataset()
    pred = best.predict(ds.preprocessing.normalize(ds.test.x), verbose=0).argmax(1)
    assert np.mean(pred == ds.test.y) == pytest.approx(rec["test_top1"], abs=1e-6)


def _weights(path):
    import keras
    return keras.models.load_model(path).get_weights()


def _same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """CFG with flips and shifts, 3 epochs, in one go. (Flips swap the blobs' left and right
    quadrants, so this run learns little: it is here for its randomness, not its accuracy.)"""
    out = tmp_path_factory.mktemp("uninterrupted")
    return out, fit.run(CFG.replace(augment=True), out, dataset=tiny_dataset(), verbose=0)


@pytest.mark.slow
def test_same_seed_same_model(tmp_path, uninterrupted):
    out, rec = uninterrupted
    again = fit.run(CFG.replace(augment=True), tmp_path, dataset=tiny_dataset(), verbose=0)
    assert _same(_weights(out / "model.keras"), _weights(tmp_path / "model.keras"))
    assert again["history"][-1]["loss"] == rec["history"][-1]["loss"]
    other = fit.run(CFG.replace(augment=True, seed=1, epochs=1), tmp_path / "s1", dataset=tiny_dataset(), verbose=0)
    assert other["history"][0]["loss"] != rec["history"][0]["loss"]


@pytest.mark.slow
def test_ctrl_c_then_resume_is_the_uninterrupted_run(tmp_path, monkeypatch, uninterrupted):
    from train.checkpoint import TEST_HOOK
    ref_out, ref = uninterrupted
    cfg = CFG.replace(augment=True)
    monkeypatch.setenv(TEST_HOOK, "state-written:2:interrupt")   # SIGINT, as Ctrl-C sends
    with pytest.raises(fit.Interrupted) as stopped:
        fit.run(cfg, tmp_path, dataset=tiny_dataset(), verbose=0)
    last = tmp_path / "train" / "last.keras"
    assert stopped.value.where.startswith(f"the last finished epoch (2 of 3) is in {last}")
    state = json.loads((tmp_path / "train" / "state.json").read_text())
    assert state["epochs_done"] == 2 and not (tmp_path / "model.keras").exists()
    import keras
    assert keras.models.load_model(last).optimizer.iterations.numpy() == 2 * (512 // 32)

    monkeypatch.delenv(TEST_HOOK)
    rec = fit.run(cfg, tmp_path, dataset=tiny_dataset(), resume=True, verbose=0)
    assert [h["epoch"] for h in rec["history"]] == [1, 2, 3]
    assert rec["resumed_after_epochs"] == [2] and ref["resumed_after_epochs"] == []
    assert _same(_weights(tmp_path / "train" / "last.keras"), _weights(ref_out / "train" / "last.keras"))
    assert rec["test_top1"] == ref["test_top1"]
    timing = rec["timing"]
    assert [(s["first_epoch"], s["last_epoch"]) for s in timing["sessions"]] == [(1, 2), (3, 3)]
    assert timing["total_seconds"] >= timing["epochs_seconds"] == pytest.approx(
        sum(h["seconds"] for h in rec["history"]))

    with pytest.raises(fit.ResumeError, match="another config"):
        fit.run(cfg.replace(alpha=0.5), tmp_path, dataset=tiny_dataset(), resume=True, verbose=0)


@pytest.mark.slow
def test_weights_from_a_model_trained_earlier(tmp_path):
    """Fine-tuning on 3 of the 4 classes: every layer but the classifier loads, and it shows."""
    from quantize.files import sha256
    from train.weights import load_weights
    earlier = tmp_path / "earlier"
    assert fit.run(CFG, earlier, dataset=tiny_dataset(), verbose=0)["test_top1"] > 0.9
    three = tiny_dataset(classes=3)
    cfg = CFG.replace(epochs=1, learning_rate=3e-4, weights=str(earlier / "model.keras"))
    rec = fit.run(cfg, tmp_path / "tuned", dataset=three, verbose=0)
    info = rec["weights"]
    assert info["sha256"] == sha256(earlier / "model.keras")
    assert info["layers_loaded"] == info["layers_with_weights"] - 1
    assert [s["layer"] for s in info["skipped"]] == ["conv_preds"]
    scratch = fit.run(cfg.replace(weights="none"), tmp_path / "scratch", dataset=three, verbose=0)
    assert rec["test_top1"] > scratch["test_top1"] + 0.2, (rec["test_top1"], scratch["test_top1"])

    import keras
    source = keras.models.load_model(earlier / "model.keras")
    source.save_weights(tmp_path / "earlier.weights.h5")
    fresh = fit.build_model(CFG, 4)
    info = load_weights(fresh, CFG.replace(weights=str(tmp_path / "earlier.weights.h5")))
    assert info["layers_loaded"] == info["layers_with_weights"] and not info["skipped"]
    x = tiny_dataset().preprocessing.normalize(tiny_dataset().test.x[:64])
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), source.predict(x, verbose=0))


@pytest.mark.slow
def test_fashion_mnist_subset_loss_falls(tmp_path):
    """Integration: a few hundred steps on real Fashion-MNIST images."""
    from imagedata.dataset import load_dataset
    cfg = TrainConfig(epochs=2, batch_size=64, warmup_epochs=0.2, bn_momentum=0.5)
    ds = load_dataset("fashion_mnist", fit.preprocessing_for(cfg))
    small = Dataset(ds.labels, ds.train.take(3000), ds.val.take(500), ds.calibration.take(100),
                    ds.test.take(1000), ds.preprocessing, ds.provenance)
    rec = fit.run(cfg, tmp_path, dataset=small, verbose=0)
    assert rec["history"][-1]["loss"] < rec["history"][0]["loss"]
    assert rec["test_top1"] > 0.5, "10 classes: chance is 0.1"


@pytest.mark.network
def test_imagenet_weights_load_by_name():
    from train.weights import load_weights
    cfg = TrainConfig(arch="v2", alpha=0.35, resolution=96, channels=3, weights="imagenet")
    model = fit.build_model(cfg, classes=5)
    info = load_weights(model, cfg)
    assert info["source"] == "imagenet" and [s["layer"] for s in info["skipped"]] == ["predictions"]
    import keras
    ref = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False)
    np.testing.assert_array_equal(model.get_layer("block_5_depthwise").get_weights()[0],
                                  ref.get_layer("block_5_depthwise").get_weights()[0])


@pytest.mark.network
@pytest.mark.parametrize("arch, minimalistic", [("v3-small", False), ("v3-large", True)])
def test_v3_imagenet_weights_load_by_name(arch, minimalistic):
    """conv_2 sits in keras' top: it loads too, only the classifier is new."""
    import keras
    cfg = TrainConfig(arch=arch, alpha=1.0, resolution=96, channels=3, weights="imagenet",
                      minimalistic=minimalistic)
    model = fit.build_model(cfg, classes=5)
    app = keras.applications.MobileNetV3Small if arch == "v3-small" else keras.applications.MobileNetV3Large
    ref = app(input_shape=(96, 96, 3), minimalistic=minimalistic, include_preprocessing=False)
    for name in ("expanded_conv_6_depthwise", "conv_2"):
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[0], ref.get_layer(name).get_weights()[0])
    assert model.get_layer("logits").get_weights()[0].shape[-1] == 5
