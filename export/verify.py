"""Check a manifest.json and the files it describes before anything spends time on them.

    from export import verify
    manifest = verify.manifest(Path("build/manifest.json"))   # VerifyError: what differs, what rebuilds it

``android_bench run`` (a manifest, or .tflite files beside one), ``export table`` and
the sweep read a manifest only through here. Checked, in this order: the file is a
JSON object of this ``schema_version`` with the keys consumers read; each variant's
file exists with the size and sha256 recorded; the eval pack has its recorded size and
sha256 and holds what the device runner reads (``read_eval_pack``: uint8 images, labels
in range) with the manifest's labels and image count. A missing manifest beside a
staging folder is an export killed while publishing (``export.bundle``): no complete set.
Every message ends with the command that rebuilds the set.
"""
from __future__ import annotations

from pathlib import Path

from android_bench.device.measure import ProtocolError, read_eval_pack
from pipeline import publish
from quantize import files

SCHEMA_VERSION = 1   # manifest.json's layout (export.bundle writes it); another is refused
KEYS = {"variants": list, "labels": list, "eval_pack": dict, "evaluation": dict, "model": dict}
VARIANT_KEYS = ("name", "file", "size_bytes", "sha256")


class VerifyError(ValueError):
    pass


def rebuild(path: Path) -> str:
    return f"rebuild it with make export (python -m export run --out {Path(path).parent})"


def read(path: Path) -> dict:
    """The manifest's content, checked for form (not its files): VerifyError otherwise."""
    path = Path(path)
    again = rebuild(path)
    try:
        doc = publish.read_record(path, "manifest", again)
    except publish.PublishError as e:
        raise VerifyError(str(e)) from None
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        had = "no schema_version (an older export wrote it)" if version is None else f"schema_version {version!r}"
        raise VerifyError(f"'{path}' has {had}; this version reads {SCHEMA_VERSION}: {again}")
    wrong = [k for k, kind in KEYS.items() if not isinstance(doc.get(k), kind)]
    if wrong:
        raise VerifyError(f"'{path}' lacks {', '.join(wrong)} (or holds the wrong kind of value): {again}")
    for i, v in enumerate(doc["variants"]):
        missing = [k for k in VARIANT_KEYS if not isinstance(v, dict) or k not in v]
        if missing:
            raise VerifyError(f"'{path}': variant {i} has no {', '.join(missing)}: {again}")
    return doc


def same_file(path: Path, entry: dict, manifest: Path) -> None:
    """VerifyError unless ``path`` has the size and sha256 ``entry`` records."""
    again = rebuild(manifest)
    if not path.is_file():
        raise VerifyError(f"'{path}', listed in {manifest.name}, does not exist: {again}")
    size = path.stat().st_size
    if size != entry["size_bytes"]:
        raise VerifyError(f"'{path}' has {size} bytes, {manifest.name} says {entry['size_bytes']}: another run "
                          f"replaced it or it was cut off; {again}")
    digest = files.sha256(path)
    if digest != entry["sha256"]:
        raise VerifyError(f"'{path}' has sha256 {digest[:12]}..., {manifest.name} says {entry['sha256'][:12]}...: "
                          f"it is not the file this manifest measured; {again}")


def eval_pack(path: Path, doc: dict, manifest: Path) -> None:
    """The eval pack against the manifest: size, sha256, then its arrays."""
    entry = doc["eval_pack"]
    if not {"size_bytes", "sha256"} <= entry.keys():
        raise VerifyError(f"'{manifest}': eval_pack has no size_bytes or sha256: {rebuild(manifest)}")
    same_file(path, entry, manifest)
    try:
        x, _, labels = read_eval_pack(str(path))
    except ProtocolError as e:
        raise VerifyError(str(e)) from None
    if labels != list(doc["labels"]) or len(x) != entry.get("images", len(x)):
        raise VerifyError(f"'{path}' holds {len(x)} images of {labels}, {manifest.name} says "
                          f"{entry.get('images')} of {doc['labels']}: {rebuild(manifest)}")


def manifest(path: Path, pack: bool = True) -> dict:
    """The checked manifest: its form, every variant's file, and (``pack``) the eval pack."""
    path = Path(path)
    doc = read(path)
    for v in doc["variants"]:
        same_file(path.parent / v["file"], v, path)
    if pack:
        eval_pack(path.parent / doc["eval_pack"].get("file", "eval_pack.npz"), doc, path)
    return doc


def beside(model: Path) -> dict | None:
    """The entry of the manifest.json beside ``model`` that lists it, checked against the file;
    None when no manifest lists it (a .tflite of the user's own). An export killed while
    publishing there is a VerifyError: the files beside it are not one set."""
    model = Path(model)
    path = model.parent / "manifest.json"
    if not path.exists():
        if publish.leftovers(model.parent, "export"):
            read(path)   # says there is no complete set, and what rebuilds it
        return None
    doc = read(path)
    entry = next((v for v in doc["variants"] if v["file"] == model.name), None)
    if entry is not None:
        same_file(model, entry, path)
    return entry
