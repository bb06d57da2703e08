"""Data parallelism as SPMD: the per-device step is written once, then wrapped in one of three modes.

A per-device function sees its shard of the global batch and the named axis `AXIS`. A training
step comes in two halves: ``grad_fn`` (this shard's gradients and statistics) and ``update_fn``
(the optimiser update from their mean over every device); `DataParallel.wrap_train` joins them in
the mode ``config.parallel`` names ("auto" picks one):

- shard_map: one SPMD program, ``jax.shard_map`` over a 1-D mesh of every device (all processes
  included), ``lax.pmean`` of the gradients inside it. State is a tree of global arrays replicated
  over the mesh; a batch is a global array sharded along its first axis, built from each process's
  local slice.
- pmap: the same with ``jax.pmap`` over the local devices; state carries a leading axis of local
  devices and a batch is reshaped to [devices, b, ...].
- host_reduce (one process): two programs and no in-program collective. The first computes every
  device's gradients (shard_map, state and batch as in shard_map mode) and returns them per device;
  each device's vector is then copied to every other device (plain device-to-device copies, issued
  by the host), and the second program, replicated, sums them in device order and updates the
  state on every device. On a multi-core CPU split into one XLA device per core this trains as
  fast as shard_map mode without XLA:CPU's in-process all-reduce, which can deadlock there
  (`svhn_jax.core.xla_flags`). Models with BatchNorm still average their batch statistics inside the
  first program.

"auto" is host_reduce in a single process with several CPU devices, shard_map otherwise.

The canonical (host) form of the state is a tree of numpy arrays, identical on every process;
`DataParallel` moves it, and batches, into the mode's device layout and back.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.flatten_util import ravel_pytree
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"
MODES = ("shard_map", "pmap", "host_reduce")

PyTree = Any


def cluster_detected(env: dict[str, str] | None = None) -> bool:
    """True inside a multi-process job that ``jax.distributed.initialize()`` can configure by itself:
    SLURM (srun with several tasks), Open MPI (mpirun -n N), a multi-host Cloud TPU slice."""
    env = os.environ if env is None else env
    return (int(env.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in env
            or int(env.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1
            or "," in env.get("TPU_WORKER_HOSTNAMES", ""))


def initialize_distributed(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1) -> bool:
    """Joins a multi-process run through JAX's own runtime (``jax.distributed``).

    Explicit values win (all three are needed); otherwise JAX's cluster detection is used where
    `cluster_detected`; otherwise this is a single-process run. Returns True when distributed.
    Must run before anything touches the devices.
    """
    if coordinator_address or num_processes or process_id >= 0:
        if not (coordinator_address and num_processes > 0 and 0 <= process_id < num_processes):
            raise ValueError("multi-process runs need --coordinator_address=HOST:PORT, --num_processes=N "
                             "and --process_id in 0..N-1 together")
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
        return True
    if cluster_detected():
        jax.distributed.initialize()
        return True
    return False


def check_divisible(global_batch: int, name: str = "batch_size") -> None:
    """Fails fast when a global batch cannot be split evenly over every device and process."""
    n = jax.device_count()
    if global_batch % n:
        raise ValueError(f"{name}={global_batch} must be divisible by the device count ({n})")


class DataParallel:
    """Runs per-device steps over every device in one `mode` of `MODES`, and moves data to and from
    that mode's layout: a tree of global arrays (shard_map, host_reduce), or arrays with a leading
    axis of local devices (pmap)."""

    def __init__(self, mode: str = "shard_map"):
        if mode == "auto":
            several_cpus = jax.local_device_count() > 1 and jax.devices()[0].platform == "cpu"
            mode = "host_reduce" if several_cpus and jax.process_count() == 1 else "shard_map"
        if mode not in MODES:
            raise ValueError(f"parallel={mode!r}: choose auto or one of {MODES}")
        if mode == "host_reduce" and jax.process_count() > 1:
            raise ValueError("parallel='host_reduce' runs in one process; use shard_map or pmap across processes")
        self.mode = mode
        self.mesh = jax.make_mesh((jax.device_count(),), (AXIS,))
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P(AXIS))
        self.local_devices = jax.local_devices()

    @property
    def num_local_devices(self) -> int:
        return len(self.local_devices)

    # --- wrapping ---------------------------------------------------------------------------
    def wrap(self, fn: Callable, num_sharded: int, out_sharded: bool = False,
             donate_state: bool = False) -> Callable:
        """Wraps ``fn(state, *sharded, *replicated)`` (per-device code using axis `AXIS`).

        The first argument is the replicated state, the next `num_sharded` arguments are batch
        arrays split along axis 0, any further ones are replicated (e.g. a key). Outputs are
        replicated (identical on every device) unless `out_sharded`: then every output is per
        example, split along axis 0 like the batch. host_reduce wraps like shard_map here.
        """
        def specs(nargs: int) -> tuple:
            return (P(),) + (P(AXIS),) * num_sharded + (P(),) * (nargs - 1 - num_sharded)

        donate = (0,) if donate_state else ()
        if self.mode != "pmap":
            def wrapped(*args):
                # check_vma=False: the per-device code is pmap-style (it pmeans its own gradients).
                # With varying-manual-axes typing on, the gradient of a replicated parameter is
                # already psum'd by the transpose, and the explicit pmean would double-count.
                mapped = jax.shard_map(fn, mesh=self.mesh, in_specs=specs(len(args)),
                                       out_specs=P(AXIS) if out_sharded else P(), check_vma=False)
                return mapped(*args)
            return jax.jit(wrapped, donate_argnums=donate)

        def in_axes(nargs: int) -> tuple:
            return (0,) * (1 + num_sharded) + (None,) * (nargs - 1 - num_sharded)

        cache: dict[int, Callable] = {}

        def wrapped_pmap(*args):
            if len(args) not in cache:
                cache[len(args)] = jax.pmap(fn, axis_name=AXIS, in_axes=in_axes(len(args)),
                                            donate_argnums=donate)
            return cache[len(args)](*args)
        return wrapped_pmap

    def wrap_train(self, grad_fn: Callable, update_fn: Callable) -> Callable:
        """``step(state, batch, rng) -> (state, metrics)`` from the two per-device halves.

        ``grad_fn(state, batch, rng) -> (grads, stats, extra)`` runs on each device's shard;
        ``update_fn(state, grads, stats, extra) -> (state, metrics)`` gets the mean of `grads` and
        `stats` over every device and `extra` (e.g. BatchNorm statistics, already the same on
        every device) as device 0 made it. The state is donated.
        """
        if self.mode == "host_reduce":
            return HostReducedStep(self, grad_fn, update_fn)

        def step(state, batch, rng):
            grads, stats, extra = grad_fn(state, batch, rng)
            grads, stats = jax.lax.pmean((grads, stats), AXIS)
            return update_fn(state, grads, stats, extra)
        return self.wrap(step, num_sharded=1, donate_state=True)

    # --- moving data ------------------------------------------------------------------------
    def put_global(self, host_tree: PyTree) -> PyTree:
        """Host (numpy) tree -> global arrays replicated over the mesh (checkpoints' layout)."""
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self.replicated, np.asarray(x)), host_tree)

    def put_state(self, host_state: PyTree) -> PyTree:
        """Host (numpy) state -> the device layout of this mode."""
        if self.mode != "pmap":
            return self.put_global(host_state)
        d = self.num_local_devices  # pmap places a leading device axis on the local devices itself
        return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (d, *np.shape(x))), host_state)

    def to_host(self, tree: PyTree) -> PyTree:
        """A replicated tree (the state, a pmean'd output, a restored checkpoint) -> host numpy."""
        if self.mode != "pmap":
            return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)
        return jax.tree.map(lambda x: np.asarray(x[0]), tree)

    def to_global(self, state: PyTree) -> PyTree:
        """Device state -> replicated global arrays (the layout checkpoints are written from)."""
        return state if self.mode != "pmap" else self.put_global(self.to_host(state))

    def put_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's slice of a global batch -> the device layout of this mode."""
        if self.mode != "pmap":
            n = jax.process_count()
            return {k: jax.make_array_from_process_local_data(
                        self.sharded, v, (v.shape[0] * n, *v.shape[1:])) for k, v in local_batch.items()}
        d = self.num_local_devices
        return {k: v.reshape(d, -1, *v.shape[1:]) for k, v in local_batch.items()}

    def get_per_example(self, tree: PyTree) -> PyTree:
        """A per-example output -> host numpy over the whole global batch (all processes)."""
        if self.mode == "pmap":
            tree = jax.tree.map(lambda x: np.asarray(x).reshape(-1, *x.shape[2:]), tree)
        if jax.process_count() == 1:
            return jax.tree.map(np.asarray, tree)
        return multihost_utils.process_allgather(tree, tiled=True)


class HostReducedStep:
    """A training step in host_reduce mode (see the module docstring); made by `DataParallel.wrap_train`.

    Two ahead-of-time compiled programs (compiled at the first call, or by `compile`) and, between
    them, ``devices x (devices - 1)`` copies of one flat float32 vector per device.
    """

    def __init__(self, par: DataParallel, grad_fn: Callable, update_fn: Callable):
        self.par = par
        self._unravel: Callable | None = None
        self._grad_program = self._update_program = None

        def per_device(state, batch, rng):
            flat, self._unravel = ravel_pytree(grad_fn(state, batch, rng))  # structure: trace time
            return flat[None]

        def reduce_and_update(state, *flats):
            parts = [self._unravel(f[0]) for f in flats]
            total = parts[0][:2]
            for part in parts[1:]:  # in device order, identically on every device
                total = jax.tree.map(jnp.add, total, part[:2])
            grads, stats = jax.tree.map(lambda x: x / len(parts), total)
            return update_fn(state, grads, stats, parts[0][2])

        self._grads = jax.jit(jax.shard_map(per_device, mesh=par.mesh, in_specs=(P(), P(AXIS), P()),
                                            out_specs=P(AXIS), check_vma=False))
        self._update = jax.jit(jax.shard_map(reduce_and_update, mesh=par.mesh, in_specs=P(),
                                             out_specs=P(), check_vma=False), donate_argnums=0)

    def _exchange(self, per_device: jax.Array) -> list[jax.Array]:
        """[devices, n] sharded by device -> one replicated [1, n] array per device's row."""
        devices = list(self.par.mesh.devices.flat)
        rows = {s.device: s.data for s in per_device.addressable_shards}
        return [jax.make_array_from_single_device_arrays(
                    (1, *per_device.shape[1:]), self.par.replicated,
                    [jax.device_put(rows[source], d) for d in devices]) for source in devices]

    def compile(self, state: PyTree, batch: PyTree, rng: jax.Array) -> float | None:
        """Compiles both programs for these arguments (running the first once); returns the FLOPs
        of one whole step by XLA's cost analysis, or None where it has none."""
        self._grad_program = self._grads.lower(state, batch, rng).compile()
        flats = self._exchange(self._grad_program(state, batch, rng))
        self._update_program = self._update.lower(state, *flats).compile()
        costs = [p.cost_analysis() for p in (self._grad_program, self._update_program)]
        costs = [c[0] if isinstance(c, (list, tuple)) else c for c in costs]
        if not all(c and "flops" in c for c in costs):
            return None
        # Per-device programs: the first does 1/devices of the step's work, the second all of it.
        return float(costs[0]["flops"]) * len(self.par.local_devices) + float(costs[1]["flops"])

    @property
    def programs(self) -> list:
        """The two compiled executables (after the first call or `compile`)."""
        return [self._grad_program, self._update_program]

    def __call__(self, state: PyTree, batch: PyTree, rng: jax.Array) -> tuple[PyTree, PyTree]:
        if self._grad_program is None:
            self.compile(state, batch, rng)
        flats = self._exchange(self._grad_program(state, batch, rng))
        return self._update_program(state, *flats)
