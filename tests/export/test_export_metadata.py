"""The metadata writer and the stdlib-only reader agree; the device modules stay dependency-light."""
import ast
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from android_bench.device import tflite_metadata
from android_bench.device.evaluate import Classifier, EvaluationError, evaluate
from android_bench.device.tflite_metadata import METADATA_NAME, MetadataError
from export.metadata import embed
from imagedata.preprocess import Preprocessing

ROOT = Path(__file__).resolve().parents[2]
P = Preprocessing(resolution=16, channels=1)
RECORD = {"format": 1, "variant": "float32", "labels": ["ünï", "b", "c"], "preprocessing": P.to_dict(),
          "model": {"arch": "v2", "alpha": 0.35}, "provenance": {"source_model": {"sha256": "ab" * 32}}}


@pytest.fixture(scope="module")
def tflite(tmp_path_factory):
    """A small float32 .tflite straight from the converter: conv, pooling, dense softmax."""
    import keras
    from keras import layers

    from quantize import convert
    from quantize.config import QuantizeConfig, Variant
    inp = keras.Input((16, 16, 1))
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(8, 3, activation="relu")(inp))
    model = keras.Model(inp, layers.Dense(3, activation="softmax")(x))
    d = tmp_path_factory.mktemp("tflite")
    convert._export_saved_model(model, d / "saved_model")
    return convert.convert(d / "saved_model", Variant.FLOAT32, QuantizeConfig())


def run(model_bytes, x):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=model_bytes)
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(i["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(i["index"], x)
    it.invoke()
    return it.get_tensor(o["index"])


def test_round_trip_keeps_the_model_and_aligns_buffers(tflite):
    with_meta = embed(tflite, RECORD)
    assert tflite_metadata.load(with_meta) == RECORD
    entries = tflite_metadata.read_metadata(with_meta)
    assert entries.keys() == {METADATA_NAME, "min_runtime_version", "CONVERSION_METADATA"}
    assert entries["min_runtime_version"].rstrip(b"\0") == b"1.6.0"   # the converter's own entry survives
    assert json.loads(entries[METADATA_NAME]) == RECORD
    spans = [s for s in tflite_metadata.buffer_spans(with_meta) if s[1]]
    assert spans and all(start % 16 == 0 for start, _ in spans)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 16, 16, 1)).astype(np.float32)
    np.testing.assert_array_equal(run(with_meta, x), run(tflite, x))

    again = embed(with_meta, {**RECORD, "variant": "int8"})   # replaced, not duplicated
    assert tflite_metadata.load(again)["variant"] == "int8"
    assert len(tflite_metadata.read_metadata(again)) == 3
    assert len(tflite_metadata.buffer_spans(again)) == len(tflite_metadata.buffer_spans(with_meta))


def test_reader_errors_say_what_is_wrong(tflite, tmp_path):
    with pytest.raises(MetadataError, match=re.escape("not a TFLite model: file identifier b' a z' at "
                                                      "bytes 4-8, expected b'TFL3'")):
        tflite_metadata.load(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(MetadataError, match=f"has no '{METADATA_NAME}' metadata .* export it again"):
        tflite_metadata.load(tflite)
    with pytest.raises(MetadataError, match="truncated|corrupt|past the end"):
        tflite_metadata.load(embed(tflite, RECORD)[:-200])
    with pytest.raises(MetadataError, match="has format 2; this reader understands format 1"):
        tflite_metadata.load(_with_raw_metadata(tflite, {"format": 2}))
    with pytest.raises(ValueError, match="must carry format 1"):
        embed(tflite, {"labels": []})


def _with_raw_metadata(tflite, record):
    from export import metadata
    old, metadata.FORMAT = metadata.FORMAT, record["format"]
    try:
        return embed(tflite, record)
    finally:
        metadata.FORMAT = old


def test_classifier_batches_pad_and_match_one_by_one(tflite):
    model = embed(tflite, RECORD)
    x = np.random.default_rng(1).integers(0, 256, (11, 16, 16, 1)).astype(np.uint8)
    batched, single = Classifier(model, batch_size=4), Classifier(model, batch_size=1)
    assert batched.preprocessing == P and batched.metadata["labels"] == RECORD["labels"]
    np.testing.assert_allclose(batched.scores(x), single.scores(x), atol=1e-6)   # 11 = 4 + 4 + 3 (padded)
    np.testing.assert_allclose(batched.scores(x), run(tflite, P.normalize(x)), atol=1e-6)
    # top-1 against labels that are not the model's own output: recounted from the bare interpreter
    y = np.random.default_rng(2).integers(0, 3, len(x))
    reference = run(tflite, P.normalize(x)).argmax(1)
    result = evaluate(batched, x, y, RECORD["labels"])
    assert result.images == 11 and result.runtime["name"] == "ai_edge_litert"
    assert result.top1 == pytest.approx(np.mean(reference == y)) and 0 < result.top1 < 1
    np.testing.assert_array_equal(result.predictions, reference)
    for k, label in enumerate(RECORD["labels"]):
        assert result.per_class_top1[label] == pytest.approx(np.mean(reference[y == k] == k))
    with pytest.raises(EvaluationError, match="takes input \\[-1, 16, 16, 1\\], but the preprocessing makes "
                                              "\\[32, 32, 1\\] images"):
        Classifier(model, preprocessing=Preprocessing(resolution=32, channels=1))


DEVICE = ["android_bench/device/tflite_metadata.py", "android_bench/device/evaluate.py",
          "android_bench/device/__init__.py", "android_bench/__init__.py", "imagedata/preprocess.py",
          "android_bench/device/fingerprint.py", "android_bench/device/measure.py",
          "android_bench/device/runner.py", "imagedata/__init__.py"]


def test_device_list_is_what_the_runner_ships():
    from android_bench.device.runner import DEVICE_FILES
    assert sorted(DEVICE) == sorted(DEVICE_FILES)


@pytest.mark.parametrize("path", DEVICE)
def test_device_code_parses_as_python_3_9(path):
    ast.parse((ROOT / path).read_text(), filename=path, feature_version=(3, 9))


def test_device_side_imports_no_host_packages(tflite, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(embed(tflite, RECORD))
    code = (
        "import sys, numpy as np\n"
        "from android_bench.device.evaluate import Classifier\n"
        "from android_bench.device import fingerprint, measure, runner\n"
        f"c = Classifier({str(model)!r})\n"
        "c.predict(np.zeros((2, 16, 16, 1), np.uint8))\n"
        "measure.time_invoke(c.interpreter.invoke, measure.Protocol(1, 0, 2, 0))\n"
        "fingerprint.fingerprint(c.runtime)\n"
        "runner.check_environment(None)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'tensorflow', 'keras', 'PIL', 'click', 'tqdm', 'matplotlib', 'flatbuffers',"
        " 'train', 'quantize', 'export'}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.arm
def test_reader_runs_on_python_3_9_with_the_standard_library_only(tflite, bullseye):
    """Debian bullseye's own Python 3.9, without numpy, in the emulated Pi: the reader alone (-I)."""
    from android_bench.targets import Session, parse_target
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "m.tflite").write_bytes(embed(tflite, RECORD))
        with Session(parse_target(bullseye.target, bullseye.python)) as session:
            session.upload({"tflite_metadata.py": ROOT / "android_bench/device/tflite_metadata.py",
                            "m.tflite": Path(tmp) / "m.tflite"})
            code, out, err = session.python(["-I", "-c", "import sys; print(sys.version_info[:2])"])
            assert code == 0 and out.strip() == "(3, 9)", err
            code, out, err = session.python(["-I", "tflite_metadata.py", "m.tflite"])
    assert code == 0, err
    assert json.loads(out) == RECORD
