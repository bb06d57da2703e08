"""Training throughput of each model family on this machine, and of the PyTorch peer, as JSON.

  python scripts/benchmark_models.py [--models=goodfellow,resnet18,seed_cnn] [--batch_size=32]
      [--steps=10] [--torch_python=/tmp/torchvenv/bin/python] [--out=FILE.json]

Each model runs the project's real training step (`train.train_step` wrapped by
`parallel.DataParallel`, Adam, uint8 images cropped and normalised on device, dropout,
BatchNorm) on a fixed random batch: goodfellow and resnet18 on 64x64 RGB cropped to 54x54 with the
length head, seed_cnn on 32x32 grey with the blank head. After the compile and 2 warm-up steps,
``--steps`` steps are timed: ``train_images_per_s`` (wall clock), ``cpu_ms_per_step`` (process CPU
time, steadier than wall time on a shared machine) and ``compile_s``.

With ``--torch_python`` (a Python with torch installed, e.g. ``python3 -m venv /tmp/torchvenv &&
/tmp/torchvenv/bin/pip install torch==2.13.0``), ``../shared/bench/torch_reference.py`` runs the same
architecture in the same run (goodfellow and seed_cnn) and ``ratio_vs_torch`` compares images/s.
"""
from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from configs import default
from svhn_jax import parallel, train
from svhn_jax.models import create_model

REPO = Path(__file__).resolve().parents[1]
TORCH_REFERENCE = REPO.parent / "shared" / "bench" / "torch_reference.py"
FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["goodfellow", "resnet18", "seed_cnn"], "Registry names to time.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_integer("steps", 10, "Timed steps after compilation and 2 warm-up steps.")
flags.DEFINE_string("torch_python", "", "A Python with torch: also time torch_reference.py ('' -> skip).")
flags.DEFINE_string("out", "", "Also write the JSON list here.")

# name -> (stored image size, channels, head, crop)
SETUPS = {"goodfellow": (64, 3, "length", 54), "resnet18": (64, 3, "length", 54),
          "seed_cnn": (32, 1, "blank", 0)}


def time_jax(name: str, batch_size: int, steps: int) -> dict:
    size, channels, head, crop = SETUPS[name]
    c = default.get_config()
    c.model, c.head, c.crop_size, c.batch_size = name, head, crop, batch_size
    model = create_model(c)
    tx, _ = train.make_optimizer(c)
    par = parallel.DataParallel(c.parallel)
    shape = train.input_shape(c, (size, size, channels))
    state = par.put_state(jax.device_get(train.create_train_state(jax.random.key(0), model, tx, shape)))
    rng = np.random.default_rng(0)
    batch = par.put_batch({"images": rng.integers(0, 256, (batch_size, size, size, channels), dtype=np.uint8),
                           "lengths": rng.integers(1, 6, batch_size).astype(np.int32),
                           "digits": rng.integers(0, 10, (batch_size, 5)).astype(np.int32)})
    step = par.wrap(functools.partial(train.train_step, model=model, tx=tx, config=c), num_sharded=1,
                    donate_state=True)
    key = jax.random.key(1)
    start = time.perf_counter()
    state, metrics = step(state, batch, key)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    for _ in range(2):
        state, metrics = step(state, batch, key)
    jax.block_until_ready(metrics)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        state, metrics = step(state, batch, key)
    jax.block_until_ready(metrics)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"framework": "jax", "jax": jax.__version__, "model": name, "batch_size": batch_size,
            "input": list(shape), "device": jax.devices()[0].device_kind, "compile_s": round(compile_s, 1),
            "train_images_per_s": round(steps * batch_size / wall, 2),
            "step_ms": round(1000 * wall / steps, 1), "cpu_ms_per_step": round(1000 * cpu / steps, 1)}


def time_torch(python: str, name: str, batch_size: int, steps: int) -> dict | None:
    if name not in ("goodfellow", "seed_cnn"):
        return None
    result = subprocess.run([python, str(TORCH_REFERENCE), "--model", name, "--batch_size", str(batch_size),
                             "--steps", str(steps), "--warmup", "2"], capture_output=True, text=True)
    lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"error: {TORCH_REFERENCE.name} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(lines[-1])


def main(argv: list[str]) -> None:
    del argv
    unknown = sorted(set(FLAGS.models) - set(SETUPS))
    if unknown:
        raise SystemExit(f"error: unknown model(s) {', '.join(unknown)}; choose from {', '.join(SETUPS)}")
    if FLAGS.torch_python and not TORCH_REFERENCE.is_file():
        raise SystemExit(f"error: {TORCH_REFERENCE} not found")
    records = []
    for name in FLAGS.models:
        record = time_jax(name, FLAGS.batch_size, FLAGS.steps)
        peer = time_torch(FLAGS.torch_python, name, FLAGS.batch_size, FLAGS.steps) if FLAGS.torch_python else None
        if peer:
            record["torch_train_images_per_s"] = peer["train_images_per_s"]
            record["ratio_vs_torch"] = round(record["train_images_per_s"] / peer["train_images_per_s"], 2)
        records.append(record)
        print(json.dumps(record), flush=True)
    if FLAGS.out:
        tmp = Path(FLAGS.out).with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=2) + "\n")
        tmp.replace(FLAGS.out)


if __name__ == "__main__":
    app.run(main)
