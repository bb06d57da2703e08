"""The XLA settings the project chooses, in one place (they must be set before JAX starts its backend).

`use_cpu_devices(n)` splits the host CPU into `n` XLA devices
(``--xla_force_host_platform_device_count``), so that the data-parallel step (`core/parallel.py`) runs
one shard of the batch per core, each with its own executor thread, instead of one program that
parallelises every op over the cores: small convolutions parallelise poorly inside one op, so
several devices train faster (compare with ``scripts/benchmark.py --cpu_devices=2,1``). Results do
not depend on the device count (dropout and crops are keyed by the global example index) beyond
the order of float sums in the gradient mean; the batch size must divide by the device count.

"auto" (``--cpu_devices`` default) gives one device per core only when the training step has no
collective inside an XLA program: one process, ``parallel`` auto / host_reduce, and a model
without BatchNorm (``models.BATCH_NORM_MODELS``). Otherwise 1, because XLA:CPU's in-process
all-reduce between host devices can deadlock ("Termination timeout for `all reduce ...`: Expected
2 threads to join the rendezvous, but only 1 of them arrived", then an abort): device 0's
all-reduce waits inside a worker of the Eigen intra-op pool that both devices share, so device 1
can starve, and a longer timeout would only turn the abort into a hang. host_reduce mode
(`parallel.HostReducedStep`) has no in-program collective. The measurements behind these choices,
and the settings tried and not adopted, are in docs/.

Nothing here runs at import. An ``XLA_FLAGS`` that already names a device count wins (the tests set it).
"""
from __future__ import annotations

import os

_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def backend_started() -> bool:
    """Whether JAX has already created its backends (after which XLA_FLAGS changes do nothing)."""
    try:
        from jax._src import xla_bridge
        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # pragma: no cover - a JAX without the helper
        return False


def use_cpu_devices(n: int | str = "auto", collective_free: bool = True) -> int | None:
    """Asks XLA for `n` host CPU devices. "auto": one per usable core when the training step needs no
    in-program collective (`collective_free`: parallel host_reduce, no BatchNorm, one process),
    else 1. Returns the count set, or None when XLA_FLAGS already chose one or the backend started."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _DEVICE_COUNT_FLAG in flags or backend_started():
        return None
    if n == "auto":
        count = len(os.sched_getaffinity(0)) if collective_free else 1
    else:
        count = int(n)
    if count < 1:
        raise ValueError(f"cpu devices must be >= 1, got {n!r}")
    os.environ["XLA_FLAGS"] = f"{flags} {_DEVICE_COUNT_FLAG}={count}".strip()
    return count
