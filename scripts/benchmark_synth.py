"""Speed of the synthetic SVHN renderer; one JSON line per measurement.

  python scripts/benchmark_synth.py [--num=4000] [--workers=2] [--out=FILE.jsonl]

1. ``synth_parts_cpu_ms_per_image``: CPU milliseconds per image, on one core, of rendering, PNG
   encoding and writing ``digitStruct.mat`` (`--num_render` images), and the throughput on 2 cores
   that these imply (2 processes render and encode, then one writes the .mat). CPU time stays
   meaningful on a busy machine, where wall time does not.
2. ``synth_release``: wall time of `write_release` of `--num` images with `--workers` processes, as
   ``python -m svhn_jax.synth`` does (process start, PNG files and ``digitStruct.mat`` included).

`benchmark(num, workers)` returns the same records for ``scripts/benchmark.py``.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/benchmark_synth.py` from a checkout: configs/ and svhn_jax
    sys.path.insert(0, str(REPO))  # come from it, with no PYTHONPATH

from svhn_jax.data.svhn.digitstruct import Entry, write_digitstruct
from svhn_jax.data.synth import release as synthetic

flags.DEFINE_integer("num", 4000, "Images written by the release benchmark.")
flags.DEFINE_integer("workers", 2, "Processes of the release benchmark.")
flags.DEFINE_integer("num_render", 500, "Images rendered by the single-core benchmark.")
flags.DEFINE_integer("seed", 0, "Release seed.")
flags.DEFINE_string("out", "", "Also append the JSON lines to this file.")
FLAGS = flags.FLAGS


def benchmark(num: int = 4000, workers: int = 2, *, num_render: int = 500, seed: int = 0) -> list[dict]:
    """Times the parts on one core (CPU time, robust to a busy machine) and a whole release (wall)."""
    for i in range(20):  # warm the font and glyph caches
        synthetic.render_example(seed + 1, i)
    render_cpu = png_cpu = 0.0
    wall = time.perf_counter()
    entries = []
    for i in range(num_render):
        t = time.process_time()
        image, boxes = synthetic.render_example(seed, i)
        render_cpu += time.process_time() - t
        t = time.process_time()
        Image.fromarray(image).save(io.BytesIO(), **synthetic.PNG_OPTIONS)
        png_cpu += time.process_time() - t
        entries.append(Entry(f"{i + 1}.png", boxes))
    wall = time.perf_counter() - wall
    root = Path(tempfile.mkdtemp(prefix="svhn_jax_synth_bench_"))
    try:
        t = time.process_time()
        write_digitstruct(root / "digitStruct.mat", entries)
        mat_cpu = time.process_time() - t
        start = time.perf_counter()
        synthetic.write_release(root / "train", num, seed, workers=workers)
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (root / "train").iterdir())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_image = {k: v / num_render * 1e3 for k, v in (("render", render_cpu), ("png", png_cpu), ("mat", mat_cpu))}
    return [
        {"benchmark": "synth_parts_cpu_ms_per_image", "images": num_render,
         **{k: round(v, 3) for k, v in per_image.items()}, "wall_images_per_s_1core": round(num_render / wall, 1),
         # 2 processes render and write PNGs, then one writes digitStruct.mat:
         "cpu_bound_images_per_s_2cores": round(1e3 / ((per_image["render"] + per_image["png"]) / 2
                                                       + per_image["mat"]), 1)},
        {"benchmark": "synth_release", "images": num, "workers": workers, "cpu_count": os.cpu_count(),
         "seconds": round(seconds, 2), "images_per_s": round(num / seconds, 1),
         "megabytes": round(size / 2**20, 1)},
    ]


def main(argv: list[str]) -> None:
    del argv
    for record in benchmark(FLAGS.num, FLAGS.workers, num_render=FLAGS.num_render, seed=FLAGS.seed):
        line = json.dumps(record)
        print(line, flush=True)
        if FLAGS.out:
            with open(FLAGS.out, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    sys.exit(app.run(main))
