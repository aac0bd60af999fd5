"""Decode time, warm start-up and peak memory of the decoded-image cache, on generated JPEG folders.

    .venv/bin/python benchmarks/data_cache.py [--sizes 5000,10000,20000] [--resolution 96] [--train]

The folders: N JPEGs of 224x224 px in 10 class folders, each a Fashion-MNIST item upscaled
(bicubic), tinted and given some noise so that it compresses like a photo (quality 90,
about 30 KB). They are generated once into ``--work`` and kept; the smaller folders hold
hard links to the first files of the largest. Before any timing every file is read once,
so decoding reads from the page cache, not the disk. For each size it prints:

* decode: ``load_dataset`` into an empty cache at ``--resolution`` with one worker and with
  one per core; wall seconds of the whole call (listing, decoding, writing, fsync, stamp),
  the best of ``--repeat`` runs, and the speedup. Also the CPU seconds (user + system) of
  each decoding process in that run, and the speedup they imply if each process had a
  core to itself (one process's CPU seconds over the largest of the parallel ones, worker
  start-up included): on a machine other jobs share, the kernel's fair scheduling between
  sessions (autogroup) gives this job's processes one share between them, so the wall
  speedup there says little about the cores;
* warm start: a fresh ``python -c`` process that imports imagedata and calls ``load_dataset``
  on the warm cache; wall seconds from starting the process to its exit (median of 3), and
  of ``load_dataset`` alone inside it;
* peak RSS (``ru_maxrss``, RUSAGE_CHILDREN of a small launcher) of a fresh process that loads the
  warm cache and reads one epoch of the training split in shuffled batches of 128 through
  ``Split.batch``; the same epoch through the memory map (``split.x[idx]``) for contrast;
  both against the decoded size (all of images.npy);
* with ``--train``: peak RSS and wall time of ``python -m train fit --data DIR --arch v1
  --alpha 0.25 --resolution 96 --epochs 1`` on the warm cache.
It also prints the RSS of a process that only imports numpy and imagedata, and of one that
imports TensorFlow and Keras, the floor under any training process.
Timings depend on what else runs: it prints the load average before and after.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import click  # noqa: E402
import numpy as np  # noqa: E402

PX = 224
CLASSES = 10
EPOCH = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from imagedata.dataset import load_dataset
from imagedata.preprocess import Preprocessing
ds = load_dataset(sys.argv[1], Preprocessing(resolution=int(sys.argv[2]), channels=3), skip_bad_images=True)
loaded = time.perf_counter() - t0
mode = sys.argv[3]
if mode != "load":
    order = np.random.default_rng(0).permutation(len(ds.train))
    for k in range(0, len(order), 128):
        idx = order[k:k + 128]
        batch = ds.train.batch(idx) if mode == "batch" else np.asarray(ds.train.x[idx])
print(json.dumps({"load_seconds": loaded, "total_seconds": time.perf_counter() - t0,
                  "train": len(ds.train), "cache": ds.provenance["cache"]["path"]}))
"""


def _make_image(args):
    path, gray, seed = args
    from PIL import Image
    rng = np.random.default_rng(seed)
    big = np.asarray(Image.fromarray(gray).resize((PX, PX), Image.BICUBIC), np.float32)
    rgb = big[..., None] * rng.uniform(0.4, 1.0, 3) + rng.normal(0, 10, (PX, PX, 3)) + 20
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=90)


def generate(work: Path, sizes: list[int]) -> dict[int, Path]:
    """{size: folder}; the largest is generated, the others are hard links to its first files."""
    from imagedata import fashion_mnist
    largest = max(sizes)
    full = work / f"jpeg{largest}"
    if not (full / ".complete").exists():
        shutil.rmtree(full, ignore_errors=True)
        arrays, _ = fashion_mnist.load()
        x, y = np.concatenate([arrays["x_train"], arrays["x_test"]]), np.concatenate([arrays["y_train"], arrays["y_test"]])
        jobs = []
        for k in range(CLASSES):
            (full / f"class{k}").mkdir(parents=True)
            items = np.flatnonzero(y == k)[: largest // CLASSES]
            jobs += [(full / f"class{k}" / f"{i:05d}.jpg", x[j], int(j)) for i, j in enumerate(items)]
        t0 = time.perf_counter()
        with Pool() as pool:
            pool.map(_make_image, jobs, chunksize=64)
        (full / ".complete").touch()
        print(f"generated {len(jobs)} JPEGs in {full} in {time.perf_counter() - t0:.0f} s", flush=True)
    folders = {largest: full}
    for n in sizes:
        if n == largest:
            continue
        d = work / f"jpeg{n}"
        if not (d / ".complete").exists():
            shutil.rmtree(d, ignore_errors=True)
            for k in range(CLASSES):
                (d / f"class{k}").mkdir(parents=True)
                for f in sorted((full / f"class{k}").iterdir())[: n // CLASSES]:
                    os.link(f, d / f"class{k}" / f.name)
            (d / ".complete").touch()
        folders[n] = d
    return folders


def warm_page_cache(folder: Path) -> int:
    total = 0
    for f in folder.rglob("*.jpg"):
        total += len(f.read_bytes())
    return total


# Runs the measured command and reports its peak RSS (RUSAGE_CHILDREN). A child's ru_maxrss starts
# at its parent's RSS when it was forked (Linux carries the old memory's high-water mark across
# exec), so the command is started from this small interpreter, not from the benchmark's big one.
LAUNCHER = """
import resource, subprocess, sys
rc = subprocess.run(sys.argv[2:]).returncode
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)
"""


def run_child(cmd: list[str], env: dict) -> tuple[float, int, str, str]:
    """(wall seconds, peak RSS bytes, stdout, stderr) of one command in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-I", "-S", "-c", LAUNCHER, str(rss_file), *cmd], cwd=REPO, env=env,
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({r.returncode}):\n{r.stderr[-2000:]}")
        return wall, int(rss_file.read_text()) * 1024, r.stdout, r.stderr   # ru_maxrss is in KiB on Linux


def decode_time(folder: Path, resolution: int, workers: int, repeat: int) -> tuple[float, list, int]:
    """Best wall seconds of load_dataset into an empty cache, that run's CPU seconds per decoding
    process, and the decoded bytes."""
    from imagedata.dataset import load_dataset
    from imagedata.preprocess import Preprocessing
    best, cpu, size = float("inf"), [], 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(dir=folder.parent) as cache:
            t0 = time.perf_counter()
            ds = load_dataset(str(folder), Preprocessing(resolution=resolution, channels=3), cache_dir=cache,
                              workers=workers)
            wall = time.perf_counter() - t0
            if wall < best:
                best, cpu = wall, ds.provenance["cache"]["decode_cpu_seconds"]
            size = (Path(ds.provenance["cache"]["path"]) / "images.npy").stat().st_size
            del ds
    return best, cpu, size


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


@click.command()
@click.option("--sizes", default="5000,10000,20000", show_default=True, help="images per folder")
@click.option("--resolution", default=96, show_default=True, help="the model's resolution: what is decoded")
@click.option("--repeat", default=2, show_default=True, help="decode runs per setting; the best is shown")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              default=Path(tempfile.gettempdir()) / "mobilenet-deploy-bench-data", show_default=True)
@click.option("--train", "with_train", is_flag=True, help="also measure python -m train fit (slow)")
def main(sizes, resolution, repeat, work, with_train):
    from android_bench.device.fingerprint import cpu_model
    sizes = sorted(int(s) for s in sizes.split(","))
    cores = len(os.sched_getaffinity(0))
    print(f"CPU: {cpu_model()}, {cores} cores; load average {os.getloadavg()[0]:.1f} at the start "
          f"(timings on a shared machine are under that load)", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    folders = generate(work, sizes)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    py = sys.executable
    _, floor, _, _ = run_child([py, "-c", "import numpy, imagedata.dataset"], env)
    _, tf_floor, _, _ = run_child([py, "-c", "import tensorflow, keras"], env)
    print(f"RSS of a process importing numpy + imagedata: {mib(floor)}; tensorflow + keras: {mib(tf_floor)}")

    rows = []
    for n in sizes:
        folder = folders[n]
        jpeg_bytes = warm_page_cache(folder)
        one, cpu_one, decoded = decode_time(folder, resolution, 1, repeat)
        many, cpu_many, _ = decode_time(folder, resolution, cores, repeat)
        by_cpu = sum(cpu_one) / max(cpu_many)
        print(f"{n} images ({mib(jpeg_bytes)} of JPEG): decode {one:.1f} s on 1 process, {many:.1f} s on "
              f"{cores} ({one / many:.2f}x); decoded {mib(decoded)}. CPU seconds: {sum(cpu_one):.1f} on 1, "
              f"{' + '.join(f'{c:.1f}' for c in cpu_many)} on {cores}: {by_cpu:.2f}x if each had a core",
              flush=True)
        cache = work / f"cache{n}"
        env_n = {**env, "MOBILENET_DEPLOY_IMAGE_CACHE": str(cache)}
        run_child([py, "-c", EPOCH, str(folder), str(resolution), "load"], env_n)   # make it warm
        starts = [run_child([py, "-c", EPOCH, str(folder), str(resolution), "load"], env_n) for _ in range(3)]
        start = statistics.median(s[0] for s in starts)
        load = statistics.median(json.loads(s[2])["load_seconds"] for s in starts)
        _, rss_batch, out, _ = run_child([py, "-c", EPOCH, str(folder), str(resolution), "batch"], env_n)
        epoch = json.loads(out)
        _, rss_map, _, _ = run_child([py, "-c", EPOCH, str(folder), str(resolution), "map"], env_n)
        row = {"images": n, "decoded": decoded, "decode_1": one, "decode_all": many, "by_cpu": by_cpu,
               "cpu_one": sum(cpu_one), "cpu_many": cpu_many, "start": start, "load": load,
               "rss_batch": rss_batch, "rss_map": rss_map, "train_split": epoch["train"],
               "epoch_seconds": epoch["total_seconds"] - epoch["load_seconds"]}
        print(f"  warm start {start:.2f} s (load_dataset {load:.2f} s); epoch of {epoch['train']} through "
              f"Split.batch in {row['epoch_seconds']:.1f} s, peak RSS {mib(rss_batch)} "
              f"({rss_batch / decoded:.0%} of decoded); through the memory map {mib(rss_map)}", flush=True)
        if with_train:
            out_dir = work / f"train{n}"
            wall, rss, _, _ = run_child([py, "-m", "train", "fit", "--data", str(folder), "--arch", "v1",
                                         "--alpha", "0.25", "--resolution", "96", "--epochs", "1",
                                         "--out", str(out_dir)], env_n)
            row.update(train_rss=rss, train_seconds=wall)
            print(f"  train fit: peak RSS {mib(rss)} ({rss / decoded:.0%} of decoded), {wall:.0f} s", flush=True)
        rows.append(row)

    print(f"\nload average {os.getloadavg()[0]:.1f} at the end\n")
    head = ("| images | decoded | decode, 1 process | decode, {c} | speedup (wall) | CPU s, 1 / {c} "
            "| speedup (CPU) | warm start | epoch via Split.batch: peak RSS | via memory map |")
    print(head.format(c=f"{cores} processes") + (" train fit: peak RSS |" if with_train else ""))
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if with_train else ""))
    for r in rows:
        line = (f"| {r['images']:,} | {mib(r['decoded'])} | {r['decode_1']:.1f} s | {r['decode_all']:.1f} s | "
                f"{r['decode_1'] / r['decode_all']:.2f}x | {r['cpu_one']:.1f} / "
                f"{' + '.join(f'{c:.1f}' for c in r['cpu_many'])} | {r['by_cpu']:.2f}x | {r['start']:.2f} s | "
                f"{mib(r['rss_batch'])} ({r['rss_batch'] / r['decoded']:.0%}) | {mib(r['rss_map'])} |")
        if with_train:
            line += f" {mib(r['train_rss'])} ({r['train_rss'] / r['decoded']:.0%}) |"
        print(line)


if __name__ == "__main__":
    main()
