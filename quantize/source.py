"""The trained model quantization starts from, and the data it was trained on.

``model.keras`` comes with the ``model.json`` that ``python -m train fit``
writes beside it: labels, preprocessing, the training config (data and seed
included) and the data's checksums. Later stages read both from here, so every
check that "the model and the data belong together" lives in one place.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from imagedata.dataset import Dataset, load_dataset
from imagedata.preprocess import Preprocessing
from quantize import files

REQUIRED = ("labels", "preprocessing", "config")
FASHION_MNIST = "fashion_mnist"


class SourceError(ValueError):
    pass


@dataclass(frozen=True)
class Source:
    model_path: Path
    sha256: str
    record: dict                 # model.json as train wrote it

    @property
    def labels(self) -> list:
        return list(self.record["labels"])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.record["preprocessing"])

    def summary(self) -> dict:
        """What later artifacts record about their source: model.json without the epoch history."""
        return {"file": str(self.model_path), "sha256": self.sha256,
                **{k: v for k, v in self.record.items() if k != "history"}}


def load_source(model_path: Path) -> Source:
    model_path = Path(model_path)
    if not model_path.is_file():
        raise SourceError(f"model '{model_path}' does not exist: train one first "
                          f"(make train, or python -m train fit --out {model_path.parent})")
    json_path = model_path.with_suffix(".json")
    if not json_path.is_file():
        raise SourceError(f"'{json_path}' is missing: it holds the labels and preprocessing every "
                          f".tflite must carry. Keep the model.json that train wrote beside "
                          f"'{model_path.name}', or retrain")
    try:
        record = json.loads(json_path.read_text())
    except ValueError as e:
        raise SourceError(f"'{json_path}' is not valid JSON ({e}); retrain to rewrite it") from None
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise SourceError(f"'{json_path}' lacks {missing}; it was not written by python -m train fit")
    try:
        Preprocessing.from_dict(record["preprocessing"])
    except (TypeError, ValueError) as e:
        raise SourceError(f"'{json_path}' has a bad preprocessing entry: {e}") from None
    return Source(model_path, files.sha256(model_path), record)


def load_keras(source: Source):
    """The Keras model, checked against model.json: input shape and number of classes."""
    import keras
    try:
        model = keras.models.load_model(source.model_path, compile=False)
    except Exception as e:  # keras raises ValueError, OSError, zipfile errors... for a bad file
        raise SourceError(f"cannot load model '{source.model_path}': {e} (retrain it)") from None
    want = tuple(source.preprocessing.input_shape)
    got = tuple(model.input_shape[1:])
    if got != want:
        raise SourceError(f"model '{source.model_path}' takes {got} input but its data is "
                          f"preprocessed to {want} (model.json preprocessing): model.keras and "
                          f"model.json do not belong together; retrain to rewrite both")
    classes = model.output_shape[-1]
    if classes != len(source.labels):
        raise SourceError(f"model '{source.model_path}' has {classes} outputs but model.json lists "
                          f"{len(source.labels)} labels; retrain to rewrite both")
    return model


def _data_location(record: dict, data: str | None) -> str:
    if data:
        return data
    name = record["config"].get("data", FASHION_MNIST)
    if name == FASHION_MNIST or Path(name).is_dir():
        return name
    # A relative folder seen from another directory: train also recorded the absolute one.
    source = record.get("data", {}).get("source")
    if source and Path(source).is_dir():
        return source
    raise SourceError(f"the model was trained on data '{name}', which is not a folder here; "
                      f"pass --data DIR with the same class folders")


def _fingerprint(provenance: dict) -> dict:
    return {k: provenance[k] for k in ("sha256", "files_sha256") if k in provenance}


def load_data(record: dict, data: str | None = None, progress=None) -> Dataset:
    """The splits the model was trained with (same data, seed and preprocessing).

    ``data`` overrides the location (another copy, or other images with the same
    classes); without it, data that changed since training is an error, because
    the test split would then no longer be the images the model never saw.
    """
    location = _data_location(record, data)
    p = Preprocessing.from_dict(record["preprocessing"])
    # Images training skipped (--skip-bad-images) are skipped here too: the same splits.
    skip = bool(record.get("data", {}).get("skipped_images"))
    ds = load_dataset(location, p, seed=int(record["config"].get("seed", 0)), skip_bad_images=skip,
                      progress=progress)
    if list(ds.labels) != list(record["labels"]):
        raise SourceError(f"data '{location}' has classes {ds.labels}, the model was trained on "
                          f"{record['labels']}: pass --data with the same class folders")
    trained_on, now = _fingerprint(record.get("data", {})), _fingerprint(ds.provenance)
    if not data and trained_on and now and trained_on != now:
        raise SourceError(f"data '{location}' changed since the model was trained (its checksums "
                          f"differ from model.json's), so its test split may hold training images: "
                          f"retrain (make train), or pass --data {location} to use it anyway")
    return ds
