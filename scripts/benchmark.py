"""Training and evaluation speed on this machine, side by side with the PyTorch peer; JSON lines.

  python scripts/benchmark.py --model=seed_cnn --batch_size=64
  python scripts/benchmark.py --model=seed_cnn --batch_size=64 --cpu_devices=1,2 --torch \\
      --torch_python=/tmp/torchvenv/bin/python --torch_threads=default,1
  python scripts/benchmark.py --model=goodfellow --batch_size=32,128 --torch --torch_python=python3 \
      --torch_device=cuda --first_step=false     # on a GPU machine: the peer runs on the same GPU
  python scripts/benchmark.py --suite=all        # also scripts/benchmark_{data,predict,synth}.py

Every (model, batch size) is measured in fresh subprocesses, so each gets its own peak RSS and
compilation; with ``--torch`` the JAX and PyTorch runs alternate ``--rounds`` times, so both see
the same machine load, and a ``summary`` line gives the medians and their ratio. Records:

- ``train``: the real training step (`trainer.make_train_step`, as in training; ``--parallel`` picks
  the mode):
  ``train_images_per_second`` with batches from the real input pipeline (`pipeline.TrainBatches`
  over an in-memory split, prefetched and placed on device in a background thread), and
  ``device_resident_images_per_second`` with one batch already on the device (the gap is what the
  input pipeline costs); ``cpu_ms_per_step`` (process CPU time, robust to a busy machine),
  ``compile_seconds`` (lowering + XLA compilation, no persistent cache), ``step_gflop`` (XLA cost
  analysis) and ``fraction_of_peak`` (against `peak_gflops`), ``eval_images_per_second`` (the
  real `tasks.reader.evaluate`: padded batches, predictions fetched to the host), ``peak_rss_mb``.
- ``profile`` (``--profile``): milliseconds per step in each XLA op (a ``jax.profiler`` trace), the
  top ``--profile_top`` with their output shapes and the heavy ops inside each fusion.
- ``first_step``: a new process's first training step with an empty persistent compilation cache
  (``cold_seconds``) and again with the cache it filled (``warm_seconds``).
- ``torch``: ``../shared/bench/torch_reference.py`` (same network, random data), per thread setting.
- ``quickstart`` (``--quickstart``): the whole quickstart run's wall time and final metrics.

``load_avg`` is the 1-minute load average when the measurement started. Timings on a shared
machine vary; compare ratios from one run, not absolute numbers across runs.
"""
from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/benchmark.py` from a checkout: configs/ and svhn_jax
    sys.path.insert(0, str(REPO))  # come from it, with no PYTHONPATH
TORCH_REFERENCE = REPO.parent / "shared" / "bench" / "torch_reference.py"
TORCH_MODELS = ("seed_cnn", "goodfellow")
# Config overrides and input recipe per model family (the rest comes from configs/default.py).
MODEL_CONFIGS = {
    "seed_cnn": dict(recipe="seed32_grey", head="blank"),
    "goodfellow": dict(recipe="goodfellow64_rgb", head="length", crop_size=54),
    "resnet18": dict(recipe="goodfellow64_rgb", head="length", crop_size=54),
}
SUITE = ("benchmark_data.py", "benchmark_predict.py", "benchmark_synth.py")

flags.DEFINE_list("model", ["seed_cnn"], "Models to measure (comma-separated).")
flags.DEFINE_list("batch_size", ["64"], "Global batch sizes (comma-separated).")
flags.DEFINE_integer("steps", 60, "Timed training steps per measurement, with real data and again device-resident.")
flags.DEFINE_list("cpu_devices", ["1"], "XLA host CPU devices per JAX run (comma-separated; see "
                  "svhn_jax/core/xla_flags.py).")
flags.DEFINE_list("parallel", ["auto"], "Data-parallel modes (comma-separated: auto, host_reduce, shard_map, pmap; "
                  "svhn_jax/core/parallel.py); each is run with each --cpu_devices count.")
flags.DEFINE_integer("rounds", 3, "Alternating JAX / PyTorch rounds per (model, batch size).")
flags.DEFINE_integer("eval_examples", 2048, "Examples in the in-memory evaluation split.")
flags.DEFINE_bool("first_step", True, "Measure the first step cold and warm (persistent cache).")
flags.DEFINE_bool("torch", False, "Also run the PyTorch peer, alternating with JAX.")
flags.DEFINE_string("torch_python", "/tmp/torchvenv/bin/python", "Python with torch installed.")
flags.DEFINE_string("torch_reference", str(TORCH_REFERENCE), "The PyTorch peer's script.")
flags.DEFINE_enum("torch_device", "cpu", ["cpu", "cuda"], "Where the PyTorch peer runs (cuda: through "
                  "scripts/torch_reference_on_gpu.py, for GPU figures).")
flags.DEFINE_list("torch_threads", ["default"], "Torch thread counts (OMP_NUM_THREADS); 'default' = torch's own.")
flags.DEFINE_bool("quickstart", False, "Also time the whole quickstart (configs/quickstart.py); minutes.")
flags.DEFINE_enum("suite", "train", ["train", "all"], "'all' also runs the data, predict and synth benchmarks.")
flags.DEFINE_bool("profile", False, "Also profile the training step per XLA op (jax.profiler trace of "
                  "--profile_steps steps, last --cpu_devices/--parallel setting): a 'profile' record.")
flags.DEFINE_integer("profile_steps", 10, "Steps traced by --profile.")
flags.DEFINE_integer("profile_top", 15, "Ops listed by --profile.")
flags.DEFINE_enum("worker", "", ["", "train", "first_step", "profile"],
                  "Internal: run one measurement in this process.")
FLAGS = flags.FLAGS


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def peak_gflops() -> tuple[float, str]:
    """FP32 peak of this CPU: cores x clock x SIMD lanes x 2 (FMA) x 2 FMA units per core (assumed)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mhz = max((float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", text)), default=0.0)
    flag_words = set(re.search(r"flags\s*:(.*)", text).group(1).split()) if "flags" in text else set()
    lanes = 16 if "avx512f" in flag_words else 8 if "avx" in flag_words else 4
    fma = 2 if "fma" in flag_words else 1
    cores = len(os.sched_getaffinity(0))
    how = f"{cores} cores x {mhz / 1000:.2f} GHz x {lanes} fp32 lanes x {fma} (FMA) x 2 units"
    return cores * mhz / 1000 * lanes * fma * 2, how


def _config(model: str, batch_size: int):
    from configs import default
    c = default.get_config()
    c.model, c.batch_size, c.parallel = model, batch_size, FLAGS.parallel[0]
    for k, v in MODEL_CONFIGS.get(model, MODEL_CONFIGS["seed_cnn"]).items():
        setattr(c, k, v)
    return c


def _random_split(config, n: int, seed: int):
    """An in-memory split of random images and labels with the recipe's shape (speed only)."""
    import numpy as np

    from svhn_jax.data import store
    from svhn_jax.data.preprocess import get_recipe
    size, grey = get_recipe(config.recipe)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, n).astype(np.int32)
    digits = np.where(np.arange(5)[None] < lengths[:, None], rng.integers(0, 10, (n, 5)), 10).astype(np.int32)
    images = rng.integers(0, 256, (n, size, size, 1 if grey else 3), dtype=np.uint8)
    return store.Split(images, lengths, digits, np.array([f"{i}.png" for i in range(n)], object), {})


def _setup(model: str, batch_size: int):
    """(config, par, model, device state, run_train, train split) as `train_and_evaluate` builds them."""
    import jax

    from svhn_jax import trainer as train
    from svhn_jax.core import parallel
    from svhn_jax.core.state import create_train_state, make_optimizer
    from svhn_jax.data.model_input import input_shape
    from svhn_jax.models import create_model
    config = _config(model, batch_size)
    par = parallel.DataParallel(config.parallel)
    parallel.check_divisible(batch_size)
    split = _random_split(config, max(4096, 2 * batch_size), seed=0)
    net = create_model(config)
    tx, _ = make_optimizer(config)
    shape = input_shape(config, split.images.shape[1:])
    state = par.put_state(jax.device_get(create_train_state(jax.random.key(0), net, tx, shape)))
    return config, par, net, state, train.make_train_step(config, net, tx, par), split


def _cost_flops(compiled) -> float | None:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


def _compile_step(run_train, state, batch, key) -> tuple[Callable, list, float | None]:
    """(callable step, its compiled XLA executables, FLOPs of one whole step or None), compiled
    ahead of time: one SPMD program, or host_reduce's two."""
    import jax

    from svhn_jax.core import parallel
    if isinstance(run_train, parallel.HostReducedStep):
        flops = run_train.compile(state, batch, key)
        return run_train, run_train.programs, flops
    compiled = run_train.lower(state, batch, key).compile()
    flops = _cost_flops(compiled)  # of the per-device SPMD program: times the devices for the step
    return compiled, [compiled], flops * jax.device_count() if flops else None


def worker_train(model: str, batch_size: int) -> dict:
    """One training + evaluation measurement in this (fresh) process."""
    import jax

    from svhn_jax.data import pipeline
    from svhn_jax.tasks import reader as reader_task
    load = os.getloadavg()[0]
    config, par, net, state, run_train, split = _setup(model, batch_size)
    key = jax.random.key(1)
    batches = pipeline.TrainBatches(pipeline.training_arrays(split), batch_size, seed=0)
    resident = par.put_batch(batches.local_batch(0))

    t = time.perf_counter()
    compiled, _, flops = _compile_step(run_train, state, resident, key)  # the loop below calls `compiled`
    compile_seconds = time.perf_counter() - t

    def timed(step_batches) -> tuple[float, float]:
        """(seconds, cpu seconds) to run the steps, the last result fetched."""
        nonlocal state
        jax.block_until_ready(state)
        t0, c0 = time.perf_counter(), time.process_time()
        for b in step_batches:
            state, metrics = compiled(state, b, key)
        jax.block_until_ready((state, metrics))
        return time.perf_counter() - t0, time.process_time() - c0

    timed(resident for _ in range(5))  # warm-up
    # Real-pipeline and device-resident chunks alternate, so both see the same machine load.
    chunks, per_chunk = 3, max(1, FLAGS.steps // 3)
    n = chunks * per_chunk
    real_s = real_cpu = resident_s = resident_cpu = 0.0
    for c in range(chunks):
        steps = range(5 + c * per_chunk, 5 + (c + 1) * per_chunk)
        wall, cpu = timed(pipeline.prefetch((batches.local_batch(s) for s in steps), par.put_batch))
        real_s, real_cpu = real_s + wall, real_cpu + cpu
        wall, cpu = timed(resident for _ in steps)
        resident_s, resident_cpu = resident_s + wall, resident_cpu + cpu
    t = time.perf_counter()
    for s in range(50):  # the input pipeline's own cost per batch (gather + host-to-device), unoverlapped
        jax.block_until_ready(par.put_batch(batches.local_batch(s)))
    pipeline_ms = (time.perf_counter() - t) / 50 * 1e3

    eval_split = _random_split(config, FLAGS.eval_examples, seed=1)
    run_eval = reader_task.make_eval_step(config, net, par)
    reader_task.evaluate(run_eval, state, _random_split(config, config.eval_batch_size, 2), config, par)  # compiles
    t = time.perf_counter()
    reader_task.evaluate(run_eval, state, eval_split, config, par)
    eval_s = time.perf_counter() - t

    on_cpu = jax.devices()[0].platform == "cpu"
    peak, how = peak_gflops() if on_cpu else (0.0, "not estimated off the CPU")
    flops = flops if on_cpu else None  # XLA's GPU cost analysis is inconsistent across batch sizes
    step_s = real_s / n
    return {"measurement": "train", "framework": "jax", "jax": jax.__version__, "model": model,
            "batch_size": batch_size, "device_kind": jax.devices()[0].device_kind,
            "device_count": jax.device_count(), "parallel": par.mode,
            "train_images_per_second": round(n * batch_size / real_s, 1),
            "step_ms": round(1e3 * step_s, 2),
            "device_resident_images_per_second": round(n * batch_size / resident_s, 1),
            "device_resident_step_ms": round(1e3 * resident_s / n, 2),
            "cpu_ms_per_step": round(1e3 * real_cpu / n, 2),
            "device_resident_cpu_ms_per_step": round(1e3 * resident_cpu / n, 2),
            "input_pipeline_ms_per_batch": round(pipeline_ms, 3),
            "eval_images_per_second": round(len(eval_split) / eval_s, 1),
            "eval_batch_size": config.eval_batch_size,
            "compile_seconds": round(compile_seconds, 2),
            "step_gflop": round(flops / 1e9, 3) if flops else None,
            "achieved_gflops": round(flops / step_s / 1e9, 2) if flops else None,
            "peak_gflops": round(peak, 1), "peak_estimate": how,
            "fraction_of_peak": round(flops / step_s / 1e9 / peak, 4) if flops and peak else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "load_avg": load}


HEAVY_OPS = ("convolution", "dot", "reduce-window", "select-and-scatter", "reduce", "scatter", "gather",
             "all-reduce", "custom-call")


def hlo_ops(hlo_text: str) -> dict[str, dict]:
    """{instruction name: {"shape", "opcode", "contains"}} from an HLO module's text; "contains" lists the
    heavy ops inside a fusion's computation (e.g. a convolution), so the profile can be read."""
    instr = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (\S+) ([\w\-]+)\(")
    computations: dict[str, set] = {}
    ops, current = {}, None
    for line in hlo_text.splitlines():
        head = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+) .*\{\s*$", line)
        if head and not line.startswith(" "):
            current = computations.setdefault(head.group(1), set())
            continue
        m = instr.match(line)
        if m:
            name, shape, op = m.groups()
            calls = re.search(r"calls=%?([\w.\-]+)", line)
            ops[name] = {"shape": shape.split("{")[0], "opcode": op, "calls": calls.group(1) if calls else None}
            if current is not None:
                current.add(op)
    for info in ops.values():
        inside = computations.get(info.pop("calls") or "", set())
        info["contains"] = sorted(inside & set(HEAVY_OPS))
    return ops


def worker_profile(model: str, batch_size: int) -> dict:
    """Per-op time of the training step: a jax.profiler trace of the compiled step, XLA ops only."""
    import glob
    import gzip

    import jax

    from svhn_jax.data import pipeline
    config, par, net, state, run_train, split = _setup(model, batch_size)
    batch = par.put_batch(pipeline.TrainBatches(pipeline.training_arrays(split), batch_size, seed=0).local_batch(0))
    key = jax.random.key(1)
    step, programs, _ = _compile_step(run_train, state, batch, key)
    ops = {}  # (module, instruction) -> info: instruction names repeat across programs
    for program in programs:
        text = program.as_text()
        module = re.match(r"HloModule ([\w.\-]+)", text).group(1)
        ops.update({(module, name): info for name, info in hlo_ops(text).items()})
    for _ in range(3):
        state, metrics = step(state, batch, key)
    jax.block_until_ready(state)
    n = FLAGS.profile_steps
    with tempfile.TemporaryDirectory(prefix="svhn_jax_profile_") as trace_dir:
        t = time.perf_counter()
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(n):
                state, metrics = step(state, batch, key)
            jax.block_until_ready(state)
        wall = time.perf_counter() - t
        [trace] = glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True)
        with gzip.open(trace) as f:
            events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    busy: dict[tuple[str, str], float] = {}
    for e in events:
        key = (e.get("args", {}).get("hlo_module"), e.get("name"))
        if e.get("ph") == "X" and key in ops:
            busy[key] = busy.get(key, 0.0) + e.get("dur", 0.0) / 1e3 / n   # ms per step
    total = sum(busy.values())
    top = sorted(busy.items(), key=lambda kv: -kv[1])[:FLAGS.profile_top]
    return {"measurement": "profile", "model": model, "batch_size": batch_size, "device_count": jax.device_count(),
            "parallel": par.mode, "steps": n, "step_ms": round(1e3 * wall / n, 2),
            "op_ms_per_step": round(total, 2),  # summed over devices: can exceed step_ms
            "ops": [{"program": module, "instruction": name, "ms_per_step": round(ms, 2),
                     "share": round(ms / total, 3), **ops[module, name]} for (module, name), ms in top]}


def worker_first_step(model: str, batch_size: int) -> dict:
    """Seconds to the end of the first training step, with the persistent cache of the environment."""
    t_start = time.perf_counter()
    import jax

    from svhn_jax.core import compilation_cache
    from svhn_jax.data import pipeline
    cache = compilation_cache.enable()
    config, par, net, state, run_train, split = _setup(model, batch_size)
    batch = par.put_batch(pipeline.TrainBatches(pipeline.training_arrays(split), batch_size, seed=0).local_batch(0))
    t = time.perf_counter()
    state, metrics = run_train(state, batch, jax.random.key(1))
    jax.block_until_ready((state, metrics))
    return {"first_step_seconds": round(time.perf_counter() - t, 3),
            "process_seconds": round(time.perf_counter() - t_start, 3), "cache": str(cache)}


def run_json(cmd: list[str], env: dict | None = None, cwd: Path = REPO) -> list[dict]:
    """Runs a command and returns the JSON objects it printed (one per line); a failure is one line."""
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    records = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    if proc.returncode != 0 or not records:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}): {tail}")
    return records


def jax_worker(kind: str, model: str, batch_size: int, cpu_devices: str, parallel: str,
               env: dict | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), f"--worker={kind}", f"--model={model}",
           f"--batch_size={batch_size}", f"--steps={FLAGS.steps}", f"--eval_examples={FLAGS.eval_examples}",
           f"--cpu_devices={cpu_devices}", f"--parallel={parallel}", f"--profile_steps={FLAGS.profile_steps}",
           f"--profile_top={FLAGS.profile_top}"]
    return run_json(cmd, env={"SVHN_JAX_COMPILATION_CACHE": "", **(env or {})})[-1]


def torch_run(model: str, batch_size: int, threads: str) -> dict:
    env = {} if threads == "default" else {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    load = os.getloadavg()[0]
    on_gpu = [str(REPO / "scripts" / "torch_reference_on_gpu.py")] if FLAGS.torch_device == "cuda" else []
    record = run_json([FLAGS.torch_python, *on_gpu, FLAGS.torch_reference, "--model", model, "--batch_size",
                       str(batch_size), "--steps", str(FLAGS.steps)], env=env)[-1]
    record["torch_device"] = FLAGS.torch_device
    return {"measurement": "torch", "thread_setting": threads, **record, "load_avg": load}


def measure(model: str, batch_size: int) -> None:
    runs = [(d, p) for d in FLAGS.cpu_devices for p in FLAGS.parallel]  # the JAX settings compared
    if FLAGS.first_step:
        with tempfile.TemporaryDirectory(prefix="svhn_jax_cache_") as cache:
            devices, mode = runs[-1]
            env = {"SVHN_JAX_COMPILATION_CACHE": cache}
            cold = jax_worker("first_step", model, batch_size, devices, mode, env)
            warm = jax_worker("first_step", model, batch_size, devices, mode, env)
        emit({"measurement": "first_step", "model": model, "batch_size": batch_size, "cpu_devices": devices,
              "parallel": mode, "cold_seconds": cold["first_step_seconds"], "warm_seconds": warm["first_step_seconds"],
              "cold_process_seconds": cold["process_seconds"], "warm_process_seconds": warm["process_seconds"],
              "load_avg": os.getloadavg()[0]})
    with_torch = FLAGS.torch and model in TORCH_MODELS
    jax_ips: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    modes: dict[tuple[str, str], str] = {}
    torch_ips = {t: [] for t in FLAGS.torch_threads}
    for r in range(FLAGS.rounds):  # JAX and torch alternate, so both see the same load
        for devices, mode in runs:
            record = jax_worker("train", model, batch_size, devices, mode)
            emit({**record, "round": r})
            jax_ips[devices, mode].append(record["train_images_per_second"])
            modes[devices, mode] = record["parallel"]
        if with_torch:
            for threads in FLAGS.torch_threads:
                record = torch_run(model, batch_size, threads)
                emit({**record, "round": r})
                torch_ips[threads].append(record["train_images_per_s"])
    if FLAGS.profile:
        emit(jax_worker("profile", model, batch_size, *runs[-1]))
    for (devices, mode), values in jax_ips.items():
        summary = {"measurement": "summary", "model": model, "batch_size": batch_size, "cpu_devices": int(devices),
                   "parallel": modes[devices, mode], "rounds": FLAGS.rounds,
                   "jax_train_images_per_second": statistics.median(values)}
        for threads, torch_values in torch_ips.items():
            if torch_values:
                median = statistics.median(torch_values)
                summary[f"torch_{threads}_threads_images_per_second"] = median
                summary[f"ratio_vs_torch_{threads}_threads"] = round(statistics.median(values) / median, 2)
        emit(summary)


def quickstart() -> None:
    with tempfile.TemporaryDirectory(prefix="svhn_jax_quickstart_") as workdir:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "svhn_jax.main", "--config=configs/quickstart.py",
                               f"--workdir={workdir}"], cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"quickstart failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        final = json.loads((Path(workdir) / "final_metrics.json").read_text())
    emit({"measurement": "quickstart", "wall_seconds": round(wall, 1),
          **{k: final.get(k) for k in ("step", "train_images_per_second", "eval_sequence_accuracy",
                                        "eval_digit_accuracy", "device_count")}})


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        sizes = [int(b) for b in FLAGS.batch_size]
    except ValueError:
        sys.exit(f"error: --batch_size must be integers, got {','.join(FLAGS.batch_size)}")
    if not all(d.isdigit() and int(d) > 0 for d in FLAGS.cpu_devices):
        sys.exit(f"error: --cpu_devices must be positive integers, got {','.join(FLAGS.cpu_devices)}")
    from svhn_jax.core.parallel import MODES
    if not set(FLAGS.parallel) <= {"auto", *MODES}:
        sys.exit(f"error: --parallel must be among auto,{','.join(MODES)}, got {','.join(FLAGS.parallel)}")
    from svhn_jax.models import model_names
    unknown = sorted(set(FLAGS.model) - set(model_names()))
    if unknown:
        sys.exit(f"error: unknown model {','.join(unknown)}; choose from {','.join(model_names())}")
    if FLAGS.worker:
        from svhn_jax.core import xla_flags
        xla_flags.use_cpu_devices(int(FLAGS.cpu_devices[0]))
        fn = {"train": worker_train, "first_step": worker_first_step, "profile": worker_profile}[FLAGS.worker]
        emit(fn(FLAGS.model[0], sizes[0]))
        return
    if FLAGS.torch and not (Path(FLAGS.torch_python).exists() and Path(FLAGS.torch_reference).exists()):
        sys.exit(f"error: --torch needs {FLAGS.torch_python} (python3 -m venv /tmp/torchvenv && "
                 f"/tmp/torchvenv/bin/pip install torch==2.13.0) and {FLAGS.torch_reference}")
    try:
        for model in FLAGS.model:
            for batch_size in sizes:
                measure(model, batch_size)
        if FLAGS.quickstart:
            quickstart()
        if FLAGS.suite == "all":
            for script in SUITE:
                if (REPO / "scripts" / script).exists():
                    for record in run_json([sys.executable, str(REPO / "scripts" / script)]):
                        emit({"measurement": script.removesuffix(".py"), **record})
    except RuntimeError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main)
