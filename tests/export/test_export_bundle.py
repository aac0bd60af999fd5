"""export on a tiny trained model: the manifest's numbers, the eval pack, and a .tflite that
classifies an image file on its own exactly like the Keras model."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from android_bench.device import tflite_metadata
from imagedata.preprocess import Preprocessing
from quantize.files import sha256
from tests.quantize import tiny

VARIANTS = ["float32", "float16", "dynamic_int8", "int8", "int16x8"]


def interpreter_top1(path, x_uint8, p):
    """Image by image with the bare interpreter: an independent check of android_bench's batching.
    ``p``: what the file's input takes; gray images are sent as RGB frames, as an app would."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    pred = []
    for im in x_uint8:
        frame = np.repeat(im[None], p.channels // im.shape[-1], axis=-1)
        it.set_tensor(i["index"], p.quantize_input(frame, i["dtype"], *i["quantization"]))
        it.invoke()
        pred.append(int(np.argmax(it.get_tensor(o["index"])[0])))
    return np.array(pred)


@pytest.mark.slow
def test_manifest_holds_measured_numbers(pipeline):
    import tensorflow as tf
    m, root, ds = pipeline.manifest, pipeline.root, pipeline.ds
    assert m == json.loads((root / "manifest.json").read_text())
    assert [v["name"] for v in m["variants"]] == VARIANTS
    by = {v["name"]: v for v in m["variants"]}
    n = len(ds.test)
    for v in m["variants"]:
        f = root / v["file"]
        assert v["file"] == f"{v['name']}.tflite"
        assert v["size_bytes"] == f.stat().st_size and v["sha256"] == sha256(f)
        assert v["converter"] == {"api": "tf.lite.TFLiteConverter.from_saved_model",
                                  "version": tf.__version__}
        assert v["tensorflow"] == tf.__version__
        # top-1 is measured on the whole test split: recount it image by image
        p = Preprocessing.from_dict(tflite_metadata.load(str(f))["preprocessing"])
        pred = interpreter_top1(f, ds.test.x, p)
        assert v["top1"] == pytest.approx(np.mean(pred == ds.test.y), abs=1e-9)
        assert v["top1"] > 0.85, v
        per_class = [v["per_class_top1"][label] * np.sum(ds.test.y == k)
                     for k, label in enumerate(tiny.LABELS)]
        assert sum(per_class) / n == pytest.approx(v["top1"])
        assert v["top1_vs_float32"] == pytest.approx(v["top1"] - by["float32"]["top1"])
        assert v["size_vs_float32"] == pytest.approx(v["size_bytes"] / by["float32"]["size_bytes"])
    assert by["float32"]["top1"] == pytest.approx(pipeline.record["test_top1"], abs=1 / n)
    assert by["float32"]["agreement"] == 1.0
    assert all(v["agreement"] >= 0.9 for v in m["variants"])
    assert 0.45 < by["float16"]["size_vs_float32"] < 0.6 and by["int8"]["size_vs_float32"] < 0.32

    assert by["float32"]["input"]["dtype"] == "float32" and by["float32"]["input"]["scale"] == 0.0
    # what an app feeds: an RGB frame, batch 1; int8 takes the raw uint8 pixels (scale 1, zero point 0)
    assert all(v["input"]["shape"] == [1, 32, 32, 3] for v in m["variants"])
    assert (by["int8"]["input"]["dtype"], by["int8"]["input"]["scale"], by["int8"]["input"]["zero_point"]) == \
        ("uint8", 1.0, 0)
    assert by["int8"]["output"]["dtype"] == "uint8"
    assert by["int8"]["output"]["scale"] == pytest.approx(1 / 256)   # softmax's fixed output range
    assert by["int8"]["input_form"]["luminance"] and by["int8"]["input_form"]["normalization_in_graph"]
    assert by["float32"]["input_form"]["preprocessing"] == {**ds.preprocessing.to_dict(), "channels": 3}
    assert by["int8"]["quantization"]["calibration"] == {"split": "calibration", "images": 64}

    assert m["evaluation"]["images"] == n and m["evaluation"]["split"] == "test"
    assert m["evaluation"]["runtime"]["name"] == "ai_edge_litert"
    assert m["versions"]["ai_edge_litert"] == m["evaluation"]["runtime"]["version"]
    assert m["evaluation"]["machine"]["cores"] >= 1
    assert m["model"]["sha256"] == sha256(root / "model.keras")
    assert m["labels"] == tiny.LABELS and m["labels_file"] == "labels.txt"
    assert not list(root.glob("*.partial*"))


@pytest.mark.slow
def test_labels_and_eval_pack(pipeline):
    root, ds = pipeline.root, pipeline.ds
    assert (root / "labels.txt").read_text() == "c0\nc1\nc2\nc3\n"
    with np.load(root / "eval_pack.npz", allow_pickle=False) as pack:
        np.testing.assert_array_equal(pack["x"], ds.test.x)
        np.testing.assert_array_equal(pack["y"], ds.test.y)
        assert pack["x"].dtype == np.uint8 and pack["y"].dtype == np.int64
        assert list(pack["labels"]) == tiny.LABELS
        assert Preprocessing.from_dict(json.loads(str(pack["preprocessing"]))) == ds.preprocessing
        assert json.loads(str(pack["info"]))["images"] == len(ds.test)
    entry = pipeline.manifest["eval_pack"]
    assert entry["sha256"] == sha256(root / "eval_pack.npz") and entry["images"] == len(ds.test)


@pytest.mark.slow
def test_metadata_carries_model_and_provenance(pipeline):
    root = pipeline.root
    trained = pipeline.ds.preprocessing.to_dict()
    for name in VARIANTS:
        meta = tflite_metadata.load(str(root / f"{name}.tflite"))
        assert meta["variant"] == name and meta["labels"] == tiny.LABELS
        # what to do to a pixel for this file: RGB; int8 takes it as it is and normalizes inside
        normalized = (0.0, 1.0) if name == "int8" else (127.5, 127.5)
        assert meta["preprocessing"] == {**trained, "channels": 3, "mean": normalized[0], "std": normalized[1]}
        assert meta["input"]["trained"] == trained and meta["input"]["luminance"]
        assert meta["model"] == {"arch": "v2", "alpha": 0.35, "resolution": 32, "channels": 1,
                                 "output_stride": pipeline.record["config"]["output_stride"],
                                 "input_shape": [32, 32, 1], "classes": 4,
                                 "params": pipeline.record["model"]["params"],
                                 "macs": pipeline.record["model"]["macs"]}
        assert meta["provenance"]["source_model"]["sha256"] == sha256(root / "model.keras")
        assert meta["provenance"]["versions"]["tensorflow"] == pipeline.summary["versions"]["tensorflow"]
        assert meta["train"]["test_top1"] == pipeline.record["test_top1"]
    assert tflite_metadata.load(str(root / "int8.tflite"))["quantization"]["granularity"] == "per_tensor"


@pytest.mark.slow
def test_tflite_alone_classifies_an_image_file_like_keras(pipeline, tmp_path):
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from export.classify import classify

    ds, root = pipeline.ds, pipeline.root
    model = keras.models.load_model(root / "model.keras")
    probs = model.predict(ds.preprocessing.normalize(ds.test.x), verbose=0)
    k = int(np.flatnonzero((probs.max(1) > 0.9) & (probs.argmax(1) == ds.test.y))[0])
    png = tmp_path / "known.png"   # 64x64: the reader must resize it as the metadata says
    Image.fromarray(ds.test.x[k, ..., 0]).resize((64, 64), Image.BICUBIC).save(png)

    def pixels(p):
        with Image.open(png) as im:
            im = im.convert("L" if p.channels == 1 else "RGB")
            resample = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST, "bicubic": Image.BICUBIC}
            im = im.resize((p.resolution, p.resolution), resample[p.interpolation])
            return np.asarray(im, np.uint8).reshape(1, *p.input_shape)

    keras_label = tiny.LABELS[int(model.predict(ds.preprocessing.normalize(pixels(ds.preprocessing)),
                                                verbose=0).argmax())]
    assert keras_label == tiny.LABELS[ds.test.y[k]]
    for name in VARIANTS:
        alone = tmp_path / name / "model.tflite"   # no labels.txt, no manifest, no model.json
        alone.parent.mkdir()
        shutil.copy(root / f"{name}.tflite", alone)
        data = alone.read_bytes()
        meta = tflite_metadata.load(data)
        p = Preprocessing.from_dict(meta["preprocessing"])
        it = Interpreter(model_content=data)
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        it.set_tensor(i["index"], p.quantize_input(pixels(p), i["dtype"], *i["quantization"]))
        it.invoke()
        assert meta["labels"][int(np.argmax(it.get_tensor(o["index"])))] == keras_label, name
        assert classify(alone, [png], top=1)[0][0][0] == keras_label, name
