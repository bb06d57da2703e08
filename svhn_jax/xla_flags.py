"""The XLA settings the project chooses, in one place (they must be set before JAX starts its backend).

`use_cpu_devices(n)` splits the host CPU into `n` XLA devices
(``--xla_force_host_platform_device_count``), so that the data-parallel step (`parallel.py`) runs
one shard of the batch per core, each with its own executor thread, instead of one program that
parallelises every op over the cores. For the seed ConvNet at batch 64 on a 2-core CPU that is
~15-20 % more training images/s and ~10 % less CPU time per step (``scripts/benchmark.py
--cpu_devices=1,2``): small convolutions parallelise poorly inside one op. Results do not depend
on the device count (dropout and crops are keyed by the global example index) beyond the order of
float sums in the gradient mean; the batch size must divide by the device count.

NOT SAFE FOR LONG RUNS YET (jaxlib 0.10.2, 2 cores): with 2 host devices XLA:CPU's in-process
all-reduce of the gradients sometimes never completes ("Termination timeout for `all reduce ...`:
Expected 2 threads to join the rendezvous, but only 1 of them arrived") and the process aborts: 2
of 2 quickstart runs (after ~2,400 steps and after <100 steps, the second with
``--xla_cpu_multi_thread_eigen=false``) and 1 of ~8 60-step benchmark runs. Reproduced on demand
with four busy loops beside a 2-device quickstart (abort at step ~376 after XLA's 40 s
``--xla_cpu_collective_call_terminate_timeout_seconds``); on a quiet machine 4,000 steps ran
clean. The stack shows device 0's all-reduce waiting inside a worker of the Eigen intra-op pool
that both devices share (2 threads on 2 cores), so device 1 can starve: a deadlock, which a longer
timeout would only turn into a hang. Two processes with one device each (gloo over loopback, no
shared pool: ``--num_processes=2``) do not share that pool, but trained at only 611 images/s
(1,500 quickstart steps) against 500 for one device. Hence the default of 1.

Nothing here runs at import. An ``XLA_FLAGS`` that already names a device count wins (the tests set
it). Settings tried and not adopted (no gain measured on this 2-core AVX2 CPU): YNNPACK convolutions
off (``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``: Eigen's kernel gradients are
faster, its forward convolutions slower), ``--xla_cpu_use_onednn``, XNNPACK fusions.
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


def use_cpu_devices(n: int | str = "auto") -> int | None:
    """Asks XLA for `n` host CPU devices ("auto": one per usable core). Returns the count set, or
    None when XLA_FLAGS already chose one or the backend has started."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _DEVICE_COUNT_FLAG in flags or backend_started():
        return None
    count = len(os.sched_getaffinity(0)) if n == "auto" else int(n)
    if count < 1:
        raise ValueError(f"cpu devices must be >= 1, got {n!r}")
    os.environ["XLA_FLAGS"] = f"{flags} {_DEVICE_COUNT_FLAG}={count}".strip()
    return count
