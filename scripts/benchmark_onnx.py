"""The shipped models alone (no photo decoding, no voting) on onnxruntime against JAX (jit), as JSON: export
time, .onnx sizes, warm seconds per batch, start-up and peak memory, and the largest logit difference on the
benchmark inputs. (`benchmark_predict.py --whole_photo` measures what a user of predict sees, both backends.)

  python scripts/benchmark_onnx.py [--repeats=50] [--threads=0] [--out=FILE.json]

Needs the ``[onnx]`` extra and the exporter (``pip install --no-deps jax2onnx==0.17.1``). The reader reads
a batch of 27 (the test-time views of one box of samples/svhn_train_1.png), the localiser one letterboxed
photo (the same sample). Each backend runs in its own process (so its peak RSS, VmHWM, is its own): it imports
its libraries, loads the model (``startup_s``), runs the batch once (``first_s``: JAX traces and compiles
here, without the persistent cache), then ``--repeats`` times (``median_s``, ``min_s``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 50, "Timed runs of each batch after the first.")
flags.DEFINE_integer("threads", 0, "onnxruntime intra-op threads (0: one per core, its default).")
flags.DEFINE_string("out", "", "Also write the JSON here.")

# One backend's run, in a fresh process: argv = backend role folder repeats threads.
_WORKER = r"""
import json, statistics, sys, time
start = time.perf_counter()
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec from the forking parent.
peak_kb = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
backend, role, folder, repeats, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
import numpy as np
images = np.load(f"{folder}/{role}_input.npy")
if backend == "onnx":
    from svhn_jax.infer import onnx
    model = onnx.load(folder, role, threads=threads)
    run = model
else:
    import jax
    from svhn_jax.data.model_input import prepare_images
    from svhn_jax.infer import weights
    from svhn_jax.infer.localiser import Localiser
    if role == "localiser":
        loc = Localiser.load()
        run = lambda x: jax.block_until_ready(loc.run(x))
    else:
        config, net, variables = weights.load("reader")
        fn = jax.jit(lambda v, x: net.apply(v, prepare_images(x, config), train=False))
        run = lambda x: jax.block_until_ready(fn(variables, x))
startup = time.perf_counter() - start
t = time.perf_counter(); out = run(images); first = time.perf_counter() - t
times = []
for _ in range(repeats):
    t = time.perf_counter(); run(images); times.append(time.perf_counter() - t)
np.savez(f"{folder}/{role}_{backend}_out.npz", **{k: np.asarray(v) for k, v in out.items()})
print(json.dumps({"startup_s": round(startup, 3), "first_s": round(first, 4),
                  "median_s": round(statistics.median(times), 5), "min_s": round(min(times), 5),
                  "peak_rss_mb": round(peak_kb() / 1024, 1),
                  "jax_imported": "jax" in sys.modules}))
"""


def inputs(folder: Path) -> None:
    from svhn_jax.data.preprocess import letterbox
    from svhn_jax.infer.photos import load_image, read_labels
    from svhn_jax.infer.reader import views
    from svhn_jax.models.decoding import SIZE
    label = next(r for r in read_labels(REPO / "samples" / "labels.csv") if r["file"] == "svhn_train_1.png")
    photo = load_image(REPO / "samples" / label["file"])
    np.save(folder / "reader_input.npy", views(photo, "seed32_grey", label["box"], tta=True))
    np.save(folder / "localiser_input.npy", letterbox(photo, SIZE)[0][None])


def main(argv: list[str]) -> None:
    del argv
    from svhn_jax.infer import onnx_export
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        exported = {}
        for role in ("reader", "localiser"):
            t = time.perf_counter()
            entry = onnx_export.export_model(role, None, folder)
            exported[role] = {"export_s_total": round(time.perf_counter() - t, 2),
                              "export_s_convert": entry["export_seconds"], "onnx_mb": round(entry["bytes"] / 1e6, 2)}
        inputs(folder)
        result = {"versions": entry["versions"], "opset": entry["opset"], "threads": FLAGS.threads}
        for role in ("reader", "localiser"):
            runs = {}
            for backend in ("jax", "onnx"):
                proc = subprocess.run([sys.executable, "-c", _WORKER, backend, role, tmp, str(FLAGS.repeats),
                                       str(FLAGS.threads)], cwd=REPO, capture_output=True, text=True, check=False,
                                      env={**os.environ, "JAX_PLATFORMS": "cpu",
                                           "PYTHONPATH": os.pathsep.join(
                                               p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)})
                if proc.returncode:
                    raise SystemExit(proc.stderr[-3000:])
                runs[backend] = json.loads(proc.stdout.splitlines()[-1])
            a, b = np.load(folder / f"{role}_jax_out.npz"), np.load(folder / f"{role}_onnx_out.npz")
            batch = len(np.load(folder / f"{role}_input.npy"))
            result[role] = {"batch": batch, **exported[role], **runs,
                            "max_abs_diff": {k: float(np.abs(a[k] - b[k]).max()) for k in a.files},
                            "onnx_speedup": round(runs["jax"]["median_s"] / runs["onnx"]["median_s"], 2)}
    text = json.dumps(result, indent=2)
    print(text)
    if FLAGS.out:
        Path(FLAGS.out).write_text(text + "\n")


if __name__ == "__main__":
    app.run(main)
