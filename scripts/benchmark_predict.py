"""Start-up and latency of `svhn_jax.predict` on one image, as JSON.

  python scripts/benchmark_predict.py [--workdir=W] [--image=PATH] [--repeats=3] [--out=FILE.json]

- ``cold_s``: a whole `python -m svhn_jax.predict` call with an empty compilation cache;
- ``warm_s``: the same call again, the compiled programs now read from the persistent cache;
  both are medians over ``--repeats`` (cold, warm) pairs, each with a fresh cache folder;
  ``compile_saved_s`` is the difference;
- ``in_process_first_s`` / ``in_process_ms``: inside one process without the cache, the first
  image (tracing + compilation) and then the median of later ones (the model alone).

Without ``--workdir`` a tiny run of configs/test.py is trained first in a temporary folder (its
accuracy is irrelevant here: only the shapes matter for the timings).

``--whole_photo`` measures instead what a user of the shipped weights sees (no ``--workdir``, no
box: the localiser finds the number, the reader reads it with 27 views), for each ``--backends``
side by side (``jax``: jitted; ``onnx``: the shipped graphs on onnxruntime, `svhn_jax.infer.onnx`,
no JAX imported), each in fresh processes so their memory is their own:

- ``sizes``: ``seconds_per_photo`` per photo size (JPEG decode + localisation + reading, median of
  ``--repeats`` after one warm-up call, which compiles for JAX), in one process per backend that
  also reports ``load_s`` (imports + weights) and ``peak_rss_mb`` (its VmHWM after all sizes);
- ``cold_start_s`` / ``warm_start_s``: a whole ``python -m svhn_jax.predict [--backend=onnx]
  photo.jpg`` call on the largest photo, first with an empty compilation cache (JAX; onnxruntime
  has none, so its two calls differ only by the OS's file cache), then again; ``start_peak_rss_mb``:
  the peak memory (VmHWM) of the warm call's process.

  python scripts/benchmark_predict.py --whole_photo [--backends=jax,onnx] --out=/tmp/whole_photo.json
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/benchmark_predict.py` from a checkout: configs/ and svhn_jax
    sys.path.insert(0, str(REPO))  # come from it, with no PYTHONPATH
FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "", "A trained run ('' -> train configs/test.py in a temporary folder).")
flags.DEFINE_string("image", "", "The image to read ('' -> a generated 96x64 PNG).")
flags.DEFINE_integer("repeats", 3, "(cold, warm) call pairs and in-process calls to take the median of.")
flags.DEFINE_string("out", "", "Also write the JSON here.")
flags.DEFINE_bool("whole_photo", False, "Benchmark the shipped localiser + reader on whole photos instead.")
flags.DEFINE_list("backends", ["jax", "onnx"], "With --whole_photo: the backends to measure side by side.")
PHOTO_SIZES = ((640, 480), (1600, 1200), (4000, 3000))


def timed_call(workdir: Path, image: Path, cache: Path) -> float:
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "svhn_jax.predict", f"--workdir={workdir}",
                             f"--cache_dir={cache}", str(image)], cwd=REPO, env=env,
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"predict failed: {result.stderr.strip().splitlines()[-1:]}")
    return elapsed


def in_process(workdir: Path, image: Path, repeats: int) -> tuple[float, float]:
    from svhn_jax.infer import photos
    from svhn_jax.infer import reader as reading
    from svhn_jax.infer.reader import Reader
    reader = Reader.load(workdir)
    x = reading.preprocess(photos.load_image(image), reader.config.recipe)[None]
    start = time.perf_counter()
    reader.read_crops(x)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reader.read_crops(x)
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def make_photo(path: Path, size: tuple[int, int]) -> Path:
    """A JPEG of `size`: a textured wall with the sample house number "23" at 1/8 of the width."""
    rng = np.random.default_rng(0)
    wall = (rng.normal(150, 20, (size[1] // 8, size[0] // 8, 3))).clip(0, 255).astype(np.uint8)
    photo = Image.fromarray(wall).resize(size, Image.Resampling.BILINEAR)
    number = Image.open(REPO / "samples" / "svhn_train_2.png").convert("RGB")
    scale = size[0] / 8 / number.width
    number = number.resize((round(number.width * scale), round(number.height * scale)))
    photo.paste(number, (size[0] // 2, size[1] // 3))
    photo.save(path, quality=90)
    return path


# One backend's whole-photo reads in a fresh process: argv = backend repeats photo...; prints JSON.
_READ_WORKER = r"""
import json, statistics, sys, time
start = time.perf_counter()
backend, repeats, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
from svhn_jax.infer import whole_photo as wp
if backend == "onnx":
    from svhn_jax.infer import onnx
    reader, localiser = onnx.load_reader(), onnx.load_localiser()
else:
    from svhn_jax.infer.localiser import Localiser
    from svhn_jax.infer.reader import Reader
    reader, localiser = Reader.load(None), Localiser.load(None)
load_s = time.perf_counter() - start
sizes = {}
for path in paths:
    times = []
    for _ in range(repeats + 1):  # the first call compiles for JAX (when the box size is new)
        t = time.perf_counter()
        answer, _, _ = wp.read_file(reader, localiser, path)  # exactly what predict does per photo
        times.append(time.perf_counter() - t)
    sizes[path.rsplit("_", 1)[-1].removesuffix(".jpg")] = {
        "seconds_per_photo": round(statistics.median(times[1:]), 3), "first_s": round(times[0], 3),
        "reading": answer["reading"], "box": answer["box"]}
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec from the forking parent.
peak_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
device = None
if "jax" in sys.modules:
    import jax
    device = jax.devices()[0].device_kind
print(json.dumps({"sizes": sizes, "load_s": round(load_s, 3), "peak_rss_mb": round(peak_kb / 1024, 1),
                  "jax_imported": "jax" in sys.modules, "device": device}))
"""

# A whole `python -m svhn_jax.predict ...` call (argv: the peak-memory file, then predict's arguments),
# as `python -m` runs it, recording its process's VmHWM when it exits.
_PREDICT_CALL = r"""
import atexit, runpy, sys
peak_file, sys.argv = sys.argv[1], ["svhn_jax.predict", *sys.argv[2:]]
def peak():
    kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
    open(peak_file, "w").write(str(kb))
atexit.register(peak)
runpy.run_module("svhn_jax.predict", run_name="__main__", alter_sys=True)
"""


def _env() -> dict:
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _predict_call(backend: str, photo: Path, cache: Path, peak_file: Path) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one whole predict call."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _PREDICT_CALL, str(peak_file), f"--backend={backend}",
                             f"--cache_dir={cache}", str(photo)], cwd=REPO, env=_env(), capture_output=True,
                            text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"predict --backend={backend} failed: {result.stderr.strip()[-2000:]}")
    return elapsed, int(peak_file.read_text()) / 1024


def whole_photo(tmp: Path) -> dict:
    paths = [make_photo(tmp / f"photo_{w}x{h}.jpg", (w, h)) for w, h in PHOTO_SIZES]
    backends = {}
    for backend in FLAGS.backends:  # each in its own processes: its memory is its own
        worker = subprocess.run([sys.executable, "-c", _READ_WORKER, backend, str(FLAGS.repeats), *map(str, paths)],
                                cwd=REPO, env=_env(), capture_output=True, text=True)
        if worker.returncode != 0:
            raise SystemExit(f"--backend={backend} failed: {worker.stderr.strip()[-2000:]}")
        result = json.loads(worker.stdout.splitlines()[-1])
        (cold, _), (warm, warm_peak) = (_predict_call(backend, paths[-1], tmp / f"cache_{backend}",
                                                      tmp / f"peak_{backend}_{i}") for i in range(2))
        backends[backend] = {**result, "cold_start_s": round(cold, 3), "warm_start_s": round(warm, 3),
                             "start_peak_rss_mb": round(warm_peak, 1)}
    return {"benchmark": "predict_whole_photo", "backends": backends, "start_photo": paths[-1].name,
            "repeats": FLAGS.repeats, "cpu_count": os.cpu_count(), "load_avg": round(os.getloadavg()[0], 2),
            "date": time.strftime("%Y-%m-%d")}


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.whole_photo:
        with tempfile.TemporaryDirectory(prefix="bench_whole_photo_") as tmp:
            result = whole_photo(Path(tmp))
        text = json.dumps(result, indent=2)
        print(text)
        if FLAGS.out:
            Path(FLAGS.out).write_text(text + "\n")
        return
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        tmp = Path(tmp)
        workdir = Path(FLAGS.workdir) if FLAGS.workdir else tmp / "run"
        if not FLAGS.workdir:
            from configs import test as test_config
            from svhn_jax import trainer as train
            config = test_config.get_config()
            config.data_dir = str(tmp / "data")
            train.train_and_evaluate(config, workdir)
        image = Path(FLAGS.image) if FLAGS.image else tmp / "image.png"
        if not FLAGS.image:
            Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(image)
        colds, warms = [], []
        for r in range(FLAGS.repeats):  # interleaved, so a load change on the machine hits both alike
            cache = tmp / f"jax_cache_{r}"
            colds.append(timed_call(workdir, image, cache))
            warms.append(timed_call(workdir, image, cache))
        cold, warm = statistics.median(colds), statistics.median(warms)
        first, steady = in_process(workdir, image, FLAGS.repeats)
        import jax
        result = {"benchmark": "predict_one_image", "cold_s": round(cold, 3), "warm_s": round(warm, 3),
                  "compile_saved_s": round(cold - warm, 3), "in_process_first_s": round(first, 3),
                  "in_process_ms": round(1000 * steady, 2), "repeats": FLAGS.repeats,
                  "device": jax.devices()[0].device_kind, "workdir": str(workdir) if FLAGS.workdir else None}
    text = json.dumps(result, indent=2)
    print(text)
    if FLAGS.out:
        Path(FLAGS.out).write_text(text + "\n")


if __name__ == "__main__":
    app.run(main)
