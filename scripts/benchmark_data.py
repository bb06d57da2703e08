"""Benchmarks of the SVHN format-1 data path; one JSON line per measurement.

  python scripts/benchmark_data.py                       # both benchmarks
  python scripts/benchmark_data.py --skip_per_object     # without the slow reference parser
  python scripts/benchmark_data.py --skip_parse --workers=1,2 --num_images=8000

1. ``digitstruct_parse``: a full-size ``digitStruct.mat`` written (once, cached) from the 33,402 real
   train labels in ``../shared/data/svhn_train_labels.json``, read by the bulk parser (best of 3) and
   by the per-object one, side by side; skipped with a note when ``../shared`` is absent.
2. ``preprocess``: ``prepare_split_from_folder`` (PNG decode, crop, resize, HDF5 write) on PNGs generated
   with the real image sizes and boxes (first `--num_images` entries), for each `--workers`.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/benchmark_data.py` from a checkout: configs/ and svhn_jax
    sys.path.insert(0, str(REPO))  # come from it, with no PYTHONPATH

from svhn_jax.data.svhn import digitstruct
from svhn_jax.data.svhn import ingest as svhn

flags.DEFINE_string("labels", str(REPO.parent / "shared" / "data" / "svhn_train_labels.json"),
                    "Real SVHN train labels (JSON).")
flags.DEFINE_string("cache_dir", "/tmp/svhn_jax_benchmark_data", "Where generated inputs are kept between runs.")
flags.DEFINE_bool("skip_parse", False, "Skip the digitStruct benchmark.")
flags.DEFINE_bool("skip_per_object", False, "Do not time the per-object parser (~1-6 minutes).")
flags.DEFINE_string("workers", "2", "Comma-separated worker counts for the preprocessing benchmark.")
flags.DEFINE_integer("num_images", 8000, "PNGs generated for the preprocessing benchmark.")
flags.DEFINE_string("recipe", "seed32_grey", "Recipe of the preprocessing benchmark.")
FLAGS = flags.FLAGS


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def to_entries(raw: list[dict]) -> list[digitstruct.Entry]:
    return [digitstruct.Entry(e["filename"], tuple(
        digitstruct.DigitBox(b["label"], b["xmin"], b["ymin"], b["xmax"] - b["xmin"], b["ymax"] - b["ymin"])
        for b in e["boxes"])) for e in raw]


def cached(path: Path, make) -> Path:
    """`path`, made by `make(tmp)` the first time (atomically)."""
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        make(tmp)
        os.replace(tmp, path)
    return path


def bench_parse(raw: list[dict], cache: Path) -> None:
    entries = to_entries(raw)
    t = time.perf_counter()
    mat = cached(cache / f"digitStruct_{len(entries)}.mat", lambda p: digitstruct.write_digitstruct(p, entries))
    made = time.perf_counter() - t
    bulk = []
    for _ in range(3):
        t = time.perf_counter()
        got = bulk.read_bulk(mat)  # the bulk path itself: a fallback would not be measured here
        bulk.append(time.perf_counter() - t)
    record = dict(bench="digitstruct_parse", entries=len(entries), file_mb=round(mat.stat().st_size / 2**20, 1),
                  write_s=round(made, 2), bulk_s=round(min(bulk), 3), bulk_equal_to_labels=got == entries)
    if not FLAGS.skip_per_object:
        t = time.perf_counter()
        reference = digitstruct.read_digitstruct_per_object(mat)
        per_object = time.perf_counter() - t
        record.update(per_object_s=round(per_object, 2),
                      per_object_ms_per_entry=round(1e3 * per_object / len(entries), 3),
                      speedup=round(per_object / min(bulk), 1), parsers_agree=reference == got)
    emit(**record)


def make_pngs(raw: list[dict], folder: Path) -> None:
    """Smooth random colour fields plus a little noise, with the real sizes and boxes: their PNGs come out
    at about 40 % of the raw pixel bytes, like the real ones (~11 KB for the train split's mean of
    10,100 pixels: 404 MB of archive over 33,402 images)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for e in raw:
        w, h = e["width"], e["height"]
        coarse = rng.integers(0, 256, (max(2, h // 32), max(2, w // 32), 3), np.uint8)
        base = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float32)
        noisy = np.clip(base + rng.normal(0, 0.8, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / e["filename"])
    digitstruct.write_digitstruct(folder / "digitStruct.mat", to_entries(raw))


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers are joined on exit)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench_preprocess(raw: list[dict], cache: Path) -> None:
    raw = raw[:FLAGS.num_images]
    folder = cached(cache / f"pngs_{len(raw)}", lambda p: make_pngs(raw, p))
    png_kb = np.mean([(folder / e["filename"]).stat().st_size for e in raw]) / 1024
    for workers in (int(w) for w in FLAGS.workers.split(",")):
        out = cache / f"out_{workers}.h5"
        cpu = cpu_seconds()
        stats = svhn.prepare_split_from_folder(folder, out, FLAGS.recipe, workers=workers)
        cpu = cpu_seconds() - cpu
        out.unlink()
        # images per CPU-second hardly depends on what else runs: x cores gives the rate on x free cores.
        emit(bench="preprocess", recipe=FLAGS.recipe, workers=workers, images=stats.num_examples,
             dropped=stats.num_dropped, mean_png_kb=round(float(png_kb), 1), seconds=round(stats.seconds, 2),
             images_per_s=round(stats.num_examples / stats.seconds, 1), cpu_s=round(cpu, 2),
             images_per_cpu_s=round(stats.num_examples / cpu, 1), cpus=os.cpu_count())


def main(argv: list[str]) -> None:
    del argv
    labels = Path(FLAGS.labels)
    if not labels.is_file():
        emit(bench="data", skipped=f"{labels} absent")
        return
    raw = json.loads(labels.read_text())
    cache = Path(FLAGS.cache_dir)
    if not FLAGS.skip_parse:
        bench_parse(raw, cache)
    bench_preprocess(raw, cache)


if __name__ == "__main__":
    sys.exit(app.run(main))
