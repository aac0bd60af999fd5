"""Bad input to `python -m quantize` fails non-zero, says what to do, and leaves no half-written file."""
import json

import keras
import pytest
from click.testing import CliRunner
from keras import layers

from quantize import convert
from quantize.__main__ import cli
from quantize.config import QuantizeConfig
from tests.quantize import tiny


@keras.saving.register_keras_serializable(package="tests")
class Determinant(layers.Layer):
    """Adds det(x[:, :2, :2, 0]): TFLite has no builtin kernel for MatrixDeterminant."""

    def call(self, x):
        return x + keras.ops.reshape(keras.ops.linalg.det(x[:, :2, :2, 0]), (-1, 1, 1, 1))


def small_model(middle):
    inp = keras.Input((tiny.RES, tiny.RES, 1), name="input")
    x = layers.Conv2D(8, 3, strides=2, name="conv")(inp)
    x = middle(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inp, layers.Dense(tiny.CLASSES, activation="softmax", name="predictions")(x))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny.blob_folder(tmp_path_factory.mktemp("data") / "imgs", per_class=20)


def source(tmp_path, folder, model=None, **record):
    path = tiny.write_source(tmp_path / "src", model or small_model(layers.ReLU(6.0, name="relu")),
                             config=tiny.CFG.replace(data=str(folder)))
    if record:
        j = path.with_suffix(".json")
        j.write_text(json.dumps({**json.loads(j.read_text()), **record}))
    return path


def quantize(model, out, *args):
    return CliRunner().invoke(cli, ["--model", str(model), "--out", str(out), *args])


def assert_nothing_half_written(out, allowed=()):
    names = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert names == sorted(allowed), names
    assert not [n for n in names if ".partial" in n]


def test_op_without_int8_kernel_is_refused(tmp_path, folder):
    model = small_model(layers.Activation("log_sigmoid", name="log_sigmoid"))   # NEG has no int8 kernel
    r = quantize(source(tmp_path, folder, model), tmp_path / "q", "--variants", "float32,int8",
                 "--calibration-size", "4")
    assert r.exit_code == 1, r.output
    assert "int8: 2 op(s) have no int8 kernel, and the converter left them in float32: NEG" in r.output
    assert "log_sigmoid" in r.output and "leave int8 out of --variants" in r.output
    # float32 was complete before int8 failed, but a set is published whole or not at all
    # (pipeline.publish): no OUT, and no staging folder beside it.
    assert_nothing_half_written(tmp_path / "q")
    assert not [p.name for p in tmp_path.iterdir() if ".partial" in p.name]


def test_conversion_failure(tmp_path, folder):
    model = small_model(Determinant(name="det"))
    r = quantize(source(tmp_path, folder, model), tmp_path / "q", "--variants", "float32")
    assert r.exit_code == 1, r.output
    assert "converting to float32 failed: 'tf.MatrixDeterminant' op is neither a custom op" in r.output
    assert "TF Select ops: MatrixDeterminant" in r.output
    assert "replace that layer with TFLite builtin ops" in r.output
    assert_nothing_half_written(tmp_path / "q")


def test_model_input_does_not_match_the_data(tmp_path, folder):
    path = source(tmp_path, folder, preprocessing={"resolution": 40, "channels": 1})
    r = quantize(path, tmp_path / "q", "--variants", "float32")
    assert r.exit_code == 1
    assert ("takes (32, 32, 1) input but its data is preprocessed to (40, 40, 1) (model.json "
            "preprocessing): model.keras and model.json do not belong together") in r.output
    assert_nothing_half_written(tmp_path / "q")


def test_calibration_images_that_do_not_match_the_model(tmp_path):
    path = tiny.write_source(tmp_path / "src", small_model(layers.ReLU(name="relu")))
    with pytest.raises(convert.CalibrationError, match=r"calibration images are \(96, 40, 40, 1\) uint8 but "
                                                       r"the model takes \(N, 32, 32, 1\) uint8 images"):
        convert.run(QuantizeConfig(variants=("int8",)), path, tmp_path / "q",
                    dataset=tiny.blob_dataset(resolution=40))
    assert_nothing_half_written(tmp_path / "q")


def test_empty_calibration_set(tmp_path, folder):
    path = source(tmp_path, folder)
    with pytest.raises(convert.CalibrationError, match="the calibration split is empty"):
        convert.run(QuantizeConfig(variants=("float32", "int8")), path, tmp_path / "q",
                    dataset=tiny.blob_dataset(n_calibration=0))
    assert_nothing_half_written(tmp_path / "q")   # checked before the first conversion

    r = quantize(path, tmp_path / "q", "--calibration-size", "0")
    assert r.exit_code == 1
    assert "calibration_size must be an integer >= 1 (an empty calibration set cannot" in r.output


def test_data_changed_since_training(tmp_path, folder):
    path = source(tmp_path, folder, data={"name": "folder", "files_sha256": "0" * 64})
    r = quantize(path, tmp_path / "q", "--variants", "int8")
    assert r.exit_code == 1
    assert f"data '{folder}' changed since the model was trained" in r.output
    assert f"pass --data {folder} to use it anyway" in r.output
    assert_nothing_half_written(tmp_path / "q")


def test_missing_model_and_model_json(tmp_path):
    r = quantize(tmp_path / "nope.keras", tmp_path / "q")
    assert r.exit_code == 1 and f"model '{tmp_path / 'nope.keras'}' does not exist: train one first" in r.output
    (tmp_path / "m.keras").write_bytes(b"not a model")
    r = quantize(tmp_path / "m.keras", tmp_path / "q")
    assert r.exit_code == 1 and f"'{tmp_path / 'm.json'}' is missing: it holds the labels" in r.output
    (tmp_path / "m.json").write_text(json.dumps({"labels": ["a"], "preprocessing": {"resolution": 32,
                                                 "channels": 1}, "config": {}}))
    r = quantize(tmp_path / "m.keras", tmp_path / "q", "--variants", "float32")
    assert r.exit_code == 1 and f"cannot load model '{tmp_path / 'm.keras'}'" in r.output
    assert_nothing_half_written(tmp_path / "q")


def test_unknown_variant_lists_the_choices(tmp_path):
    r = quantize(tmp_path / "m.keras", tmp_path / "q", "--variants", "float32,int4")
    assert r.exit_code == 2
    assert "expected a comma-separated list of float32, float16, dynamic_int8, int8, int16x8" in r.output


@pytest.mark.slow
def test_input_color_and_io_are_one_flag_away(tmp_path, folder):
    src = source(tmp_path, folder)
    r = quantize(src, tmp_path / "q", "--variants", "float32,int8", "--calibration-size", "4",
                 "--input-color", "as_trained", "--io", "int8")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "q" / "quantize.json").read_text())
    assert summary["config"]["input_color"] == "as_trained" and summary["config"]["io"] == "int8"
    assert [v["input"]["channels"] for v in summary["variants"]] == [1, 1]
    from quantize import graph
    assert graph.io_types((tmp_path / "q" / "int8.tflite").read_bytes()) == (["int8"], ["int8"])
    r = quantize(src, tmp_path / "q2", "--input-color", "bgr")
    assert r.exit_code == 2 and "'bgr' is not one of 'rgb', 'as_trained'" in r.output
