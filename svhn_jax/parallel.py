"""Data parallelism as SPMD: the per-device step is written once, then wrapped by config.

A per-device function sees its shard of the global batch and the named axis `AXIS`; it averages
gradients and metrics with ``lax.pmean(..., AXIS)``. `DataParallel` wraps it either with
``jax.shard_map`` over a 1-D mesh of every device (all processes included) or with ``jax.pmap``
over the local devices, and moves state and batches in and out of the matching layout:

- shard_map: state is a tree of global arrays replicated over the mesh; a batch is a global array
  sharded along its first axis, built from each process's local slice.
- pmap: state carries a leading axis of local devices; a batch is reshaped to [devices, b, ...].

The canonical (host) form of the state is a tree of numpy arrays, identical on every process.
"""
from __future__ import annotations

from typing import Any, Callable

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

AXIS = "data"
MODES = ("shard_map", "pmap")

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
    """Runs per-device steps over every device with shard_map or pmap (`mode`)."""

    def __init__(self, mode: str = "shard_map"):
        if mode not in MODES:
            raise ValueError(f"parallel={mode!r}: choose one of {MODES}")
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
        replicated (pmean'd) unless `out_sharded`, in which case the second output is per example.
        """
        def specs(nargs: int) -> tuple:
            return (P(),) + (P(AXIS),) * num_sharded + (P(),) * (nargs - 1 - num_sharded)

        donate = (0,) if donate_state else ()
        if self.mode == "shard_map":
            def wrapped(*args):
                out_specs = (P(), P(AXIS)) if out_sharded else P()
                # check_vma=False: the per-device code is pmap-style (it pmeans its own gradients).
                # With varying-manual-axes typing on, the gradient of a replicated parameter is
                # already psum'd by the transpose, and the explicit pmean would double-count.
                mapped = jax.shard_map(fn, mesh=self.mesh, in_specs=specs(len(args)), out_specs=out_specs,
                                       check_vma=False)
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

    # --- moving data ------------------------------------------------------------------------
    def put_state(self, host_state: PyTree) -> PyTree:
        """Host (numpy) state -> the device layout of this mode."""
        if self.mode == "shard_map":
            return jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(self.replicated, np.asarray(x)),
                host_state)
        d = self.num_local_devices  # pmap places a leading device axis on the local devices itself
        return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (d, *np.shape(x))), host_state)

    def get_state(self, state: PyTree) -> PyTree:
        """Device state -> host numpy tree (every process gets the full copy)."""
        if self.mode == "shard_map":
            return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), state)
        return jax.tree.map(lambda x: np.asarray(x[0]), state)

    def to_global(self, state: PyTree) -> PyTree:
        """Device state -> replicated global arrays (the layout checkpoints are written from)."""
        return state if self.mode == "shard_map" else self.put_global(self.get_state(state))

    def put_global(self, host_state: PyTree) -> PyTree:
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self.replicated, np.asarray(x)), host_state)

    def from_global(self, global_state: PyTree) -> PyTree:
        """Replicated global arrays (e.g. restored from a checkpoint) -> this mode's layout."""
        if self.mode == "shard_map":
            return global_state
        return self.put_state(jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), global_state))

    def put_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's slice of a global batch -> the device layout of this mode."""
        if self.mode == "shard_map":
            n = jax.process_count()
            return {k: jax.make_array_from_process_local_data(
                        self.sharded, v, (v.shape[0] * n, *v.shape[1:])) for k, v in local_batch.items()}
        d = self.num_local_devices
        return {k: v.reshape(d, -1, *v.shape[1:]) for k, v in local_batch.items()}

    def get_replicated(self, tree: PyTree) -> PyTree:
        """A replicated (pmean'd) output -> host numpy."""
        if self.mode == "shard_map":
            return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)
        return jax.tree.map(lambda x: np.asarray(x[0]), tree)

    def get_per_example(self, tree: PyTree) -> PyTree:
        """A per-example output -> host numpy over the whole global batch (all processes)."""
        if self.mode == "pmap":
            tree = jax.tree.map(lambda x: np.asarray(x).reshape(-1, *x.shape[2:]), tree)
        if jax.process_count() == 1:
            return jax.tree.map(np.asarray, tree)
        return multihost_utils.process_allgather(tree, tiled=True)

