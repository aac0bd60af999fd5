"""The real consumer, used the way an app uses it: MediaPipe Tasks' ImageClassifier, and mediapipe's
own schema bindings to read the metadata back (a reader that is not this project's)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np


def classify(path: Path, images: np.ndarray) -> tuple[np.ndarray, set]:
    """(top-1 class index per image, every category name returned) of ImageClassifier on ``path``.

    ``images`` (N, H, W, 1 or 3) uint8 at the model's resolution, so that MediaPipe's resize
    is the identity; a gray image goes as an RGB frame with R = G = B."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)))
    top, names = [], set()
    with vision.ImageClassifier.create_from_options(options) as clf:
        for im in images:
            rgb = np.ascontiguousarray(np.repeat(im, 3 // im.shape[-1], axis=-1))
            categories = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)).classifications[0].categories
            top.append(categories[0].index)
            names |= {c.category_name for c in categories}
    return np.array(top), names


def read_back(path: Path) -> dict:
    """What mediapipe's generated bindings of metadata_schema.fbs read in the file's TFLITE_METADATA,
    and the label file read from the zip archive with zipfile."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as md
    from mediapipe.tasks.metadata import schema_py_generated as fb
    data = Path(path).read_bytes()
    model = fb.Model.GetRootAs(data, 0)
    entry = next(model.Metadata(i) for i in range(model.MetadataLength())
                 if model.Metadata(i).Name() == b"TFLITE_METADATA")
    buf = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    meta = md.ModelMetadataT.InitFromObj(md.ModelMetadata.GetRootAs(buf, 0))
    graph = meta.subgraphMetadata[0]
    image, scores = graph.inputTensorMetadata[0], graph.outputTensorMetadata[0]
    units = [u for u in image.processUnits if u.optionsType == md.ProcessUnitOptions.NormalizationOptions]
    colors = {v: k for k, v in vars(md.ColorSpaceType).items() if not k.startswith("_")}
    labels_file = next(f for f in scores.associatedFiles if f.type == md.AssociatedFileType.TENSOR_AXIS_LABELS)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        labels = z.read(labels_file.name.decode()).decode("utf-8").splitlines()
    return {"identifier": md.ModelMetadata.ModelMetadataBufferHasIdentifier(buf, 0),
            "name": meta.name.decode(), "license": meta.license.decode(), "version": meta.version.decode(),
            "min_parser_version": meta.minParserVersion.decode(),
            "color_space": colors[image.content.contentProperties.colorSpace],
            "mean": list(units[0].options.mean), "std": list(units[0].options.std),
            "stats": (list(image.stats.min), list(image.stats.max)), "labels": labels}
