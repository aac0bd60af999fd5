"""The metadata writers and the stdlib-only reader agree, the standard entry says what the model does,
bad labels are refused; the device modules stay dependency-light."""
import ast
import dataclasses
import io
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from android_bench.device import tflite_metadata
from android_bench.device.evaluate import Classifier, EvaluationError, evaluate
from android_bench.device.tflite_metadata import METADATA_NAME, MetadataError
from export import bundle, model_metadata
from export.__main__ import cli as export_cli
from export.metadata import embed, pack
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
          "android_bench/device/mediapipe_tasks.py", "android_bench/device/runner.py", "imagedata/__init__.py"]


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
        "{'tensorflow', 'keras', 'PIL', 'click', 'tqdm', 'matplotlib', 'flatbuffers', 'mediapipe', 'cv2',"
        " 'train', 'quantize', 'export'}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.arm
def test_reader_runs_on_python_3_9_with_the_standard_library_only(tflite, bullseye):
    """Debian bullseye's own Python 3.9, without numpy, in the emulated Pi: the reader alone (-I),
    on the provenance entry alone, then with the standard entry and the zipped labels."""
    from android_bench.targets import Session, parse_target
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "old.tflite").write_bytes(embed(tflite, RECORD))
        (Path(tmp) / "new.tflite").write_bytes(with_standard(tflite))
        with Session(parse_target(bullseye.target, bullseye.python)) as session:
            session.upload({"tflite_metadata.py": ROOT / "android_bench/device/tflite_metadata.py",
                            "old.tflite": Path(tmp) / "old.tflite", "new.tflite": Path(tmp) / "new.tflite"})
            code, out, err = session.python(["-I", "-c", "import sys; print(sys.version_info[:2])"])
            assert code == 0 and out.strip() == "(3, 9)", err
            old = session.python(["-I", "tflite_metadata.py", "old.tflite"])
            new = session.python(["-I", "tflite_metadata.py", "new.tflite"])
        standard = json.loads(json.dumps(tflite_metadata.standard((Path(tmp) / "new.tflite").read_bytes())))
    assert old[0] == 0 and new[0] == 0, (old[2], new[2])
    printed = json.loads(old[1])
    assert printed[METADATA_NAME] == RECORD and printed["labels"] == RECORD["labels"]
    assert printed["TFLITE_METADATA"] is None and printed["missing"][0].startswith("TFLITE_METADATA (the standard")
    printed = json.loads(new[1])
    assert printed["TFLITE_METADATA"] == standard
    assert printed["labels"] == list(CARD.labels) and printed["missing"] == printed["problems"] == []


# -- the standard TFLite Model Metadata ------------------------------------------------------------

CARD = model_metadata.Card(name="tiny 16x16 float32", description="a test model", version="abc123",
                           author="mobilenet-deploy", license="Apache-2.0", labels=("ünï", "b", "c"), channels=1,
                           mean=127.5, std=127.5, input_description="grayscale image, 16x16")


def with_standard(tflite, card=CARD, files=None):
    files = {card.labels_file: model_metadata.labels_text(card.labels)} if files is None else files
    return pack(tflite, {model_metadata.NAME: model_metadata.build(card), METADATA_NAME: json.dumps(RECORD).encode()},
                files=files, batch=1)


def test_standard_metadata_reads_back_and_the_model_still_runs(tflite):
    model = with_standard(tflite)
    model_metadata.check(model, CARD)                       # what it says is what the model does
    meta = tflite_metadata.standard(model)
    assert (meta["name"], meta["version"], meta["license"], meta["min_parser_version"]) == \
        ("tiny 16x16 float32", "abc123", "Apache-2.0", "1.0.0")
    image, = meta["inputs"]
    assert image["color_space"] == "GRAYSCALE" and image["normalization"] == {"mean": [127.5], "std": [127.5]}
    assert image["stats"] == {"min": [-1.0], "max": [1.0]}
    assert meta["outputs"][0]["associated_files"] == [{"name": "labels.txt", "type": "TENSOR_AXIS_LABELS",
                                                       "description": "Labels for categories that the model can recognize."}]
    assert tflite_metadata.labels(model) == ["ünï", "b", "c"]
    assert tflite_metadata.associated_files(model) == {"labels.txt": "ünï\nb\nc\n".encode()}
    assert tflite_metadata.load(model) == RECORD            # the provenance record beside it
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 1)).astype(np.float32)
    np.testing.assert_array_equal(run(model, x), run(tflite, x))
    again = embed(model, {**RECORD, "variant": "int8"})     # repacking keeps the packed labels
    assert tflite_metadata.labels(again) == ["ünï", "b", "c"] and tflite_metadata.load(again)["variant"] == "int8"
    clf = Classifier(model)                                 # the runner takes labels and normalization from it
    assert clf.labels == ["ünï", "b", "c"] and clf.preprocessing == P and clf.missing == []


def test_batch_is_declared_one_and_the_runner_still_batches(tflite):
    model = with_standard(tflite)
    from ai_edge_litert.interpreter import Interpreter
    detail = Interpreter(model_content=model).get_input_details()[0]
    assert detail["shape_signature"].tolist() == [1, 16, 16, 1]       # static: what delegates and apps want
    x = np.random.default_rng(1).integers(0, 256, (11, 16, 16, 1)).astype(np.uint8)
    batched, single = Classifier(model, batch_size=4), Classifier(model, batch_size=1)
    assert batched.batch_size == 4
    np.testing.assert_allclose(batched.scores(x), single.scores(x), atol=1e-6)


def test_the_schema_bindings_of_mediapipe_read_what_we_wrote(tflite):
    """A reader that is not ours: the generated code mediapipe ships, imported the usual way."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as md
    from tensorflow.lite.python import schema_py_generated as fb
    model = with_standard(tflite)
    m = fb.Model.GetRootAs(model, 0)
    entry = next(m.Metadata(i) for i in range(m.MetadataLength()) if m.Metadata(i).Name() == b"TFLITE_METADATA")
    buf = m.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    assert md.ModelMetadata.ModelMetadataBufferHasIdentifier(buf, 0)
    meta = md.ModelMetadataT.InitFromObj(md.ModelMetadata.GetRootAs(buf, 0))
    assert meta.minParserVersion == b"1.0.0" and meta.license == b"Apache-2.0"
    image = meta.subgraphMetadata[0].inputTensorMetadata[0]
    assert image.content.contentProperties.colorSpace == md.ColorSpaceType.GRAYSCALE
    assert image.processUnits[0].options.mean == [127.5] and image.processUnits[0].options.std == [127.5]
    labels = meta.subgraphMetadata[0].outputTensorMetadata[0].associatedFiles[0]
    assert labels.type == md.AssociatedFileType.TENSOR_AXIS_LABELS
    with zipfile.ZipFile(io.BytesIO(model)) as z:
        assert z.read(labels.name.decode()).decode().splitlines() == ["ünï", "b", "c"]


def test_min_parser_version_follows_the_schema():
    md = model_metadata.schema()
    meta = md.ModelMetadataT.InitFromPackedBuf(model_metadata.build(CARD), 0)
    assert model_metadata.min_parser_version(meta) == "1.0.0"
    meta.subgraphMetadata[0].outputTensorMetadata[0].associatedFiles[0].version = "2"   # added in 1.4.1
    assert model_metadata.min_parser_version(meta) == "1.4.1"
    meta.subgraphMetadata[0].customMetadata = [md.CustomMetadataT()]                     # added in 1.5.0
    assert model_metadata.min_parser_version(meta) == "1.5.0"


@pytest.mark.parametrize("written, message", [
    (dataclasses.replace(CARD, channels=3), "the metadata's color space is RGB but the input has 1 channel(s)"),
    (dataclasses.replace(CARD, mean=0.0, std=1.0),
     "NormalizationOptions mean is [0.0]; the model takes (pixel - 127.5) / 127.5 in each of its 1 channel(s)"),
    (dataclasses.replace(CARD, labels=("a", "b", "c", "d")), "4 labels for an output of 3 scores"),
])
def test_metadata_that_disagrees_with_the_model_is_refused(tflite, written, message):
    with pytest.raises(model_metadata.MetadataMismatch, match=re.escape(message)):
        model_metadata.check(with_standard(tflite, written), CARD)
    with pytest.raises(model_metadata.MetadataMismatch, match="labels.txt' but does not pack it"):
        model_metadata.check(with_standard(tflite, files={}), CARD)


def test_a_uint8_input_that_is_not_the_raw_pixel_is_refused(tmp_path):
    """The convention of TFLite's hosted quantized MobileNets (scale 1/128, zero point 128) is close to
    (pixel - 127.5) / 127.5, not equal: MediaPipe ignores the quantization and feeds raw pixels."""
    import keras
    from keras import layers

    from quantize import app_input, convert
    from quantize.config import QuantizeConfig, Variant
    inp = keras.Input((16, 16, 1))
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(8, 3, activation="relu")(inp))
    keras_model = keras.Model(inp, layers.Dense(3, activation="softmax")(x))
    convert._export_saved_model(keras_model, tmp_path / "sm")
    normalized = app_input.InputForm(P, channels=1, pixels=False)   # no normalization in the graph
    images = np.random.default_rng(2).integers(0, 256, (32, 16, 16, 1)).astype(np.uint8)
    int8 = convert.convert(tmp_path / "sm", Variant.INT8, QuantizeConfig(io="uint8"), images, normalized)
    with pytest.raises(model_metadata.MetadataMismatch,
                       match=r"the uint8 input has scale 0\.00784\d* and zero point 12[78]: MediaPipe feeds raw "
                             r"pixels p, which the model would read as \(p - 12[78]\) \* 0\.00784\d*, not "
                             r"\(p - 127\.5\) / 127\.5"):
        model_metadata.check(with_standard(int8), CARD)


@pytest.mark.parametrize("labels, message", [
    (["shirt", "", "shoe"], "label 1 is empty ('')"),
    (["shirt", "   "], "label 1 is empty ('   ')"),
    (["shirt", "t-\nshirt"], "label 1 't-\\nshirt' contains a line break"),
    (["shirt", "shoe", "shirt"], "label 'shirt' appears twice (classes 0 and 2)"),
])
def test_bad_labels_are_refused_by_name(labels, message, tmp_path):
    with pytest.raises(bundle.ExportError, match=re.escape(message)):
        bundle.check_labels(labels)
    q = tmp_path / "quantize"          # through the CLI: refused before anything is written
    q.mkdir()
    (q / "quantize.json").write_text(json.dumps({"variants": [], "source": {"labels": labels}}))
    r = CliRunner().invoke(export_cli, ["run", "--out", str(tmp_path)])
    assert r.exit_code == 1 and message in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quantize"]
