"""core.signals.end_pool_now: a pool whose workers died holding its task queue's lock still ends."""
import subprocess
import sys
import textwrap

from conftest import REPO

PROGRAM = textwrap.dedent("""
    import multiprocessing, os, signal, sys, time
    from svhn_jax.core.signals import end_pool_now
    if __name__ == "__main__":
        pool = multiprocessing.get_context("spawn").Pool(2)
        pool.apply(abs, (-1,))  # the workers up, then idle: one waits for a task holding the queue's lock
        time.sleep(0.5)
        for worker in pool._pool:
            os.kill(worker.pid, signal.SIGKILL)  # as a signal to the whole process group does
        time.sleep(0.3)
        (end_pool_now if sys.argv[1] == "end_pool_now" else multiprocessing.pool.Pool.terminate)(pool)
        print("ended", flush=True)
""")


def _end(how: str, timeout: float) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run([sys.executable, "-c", PROGRAM, how], cwd=REPO, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_a_pool_whose_workers_were_killed_ends_at_once():
    ended = _end("end_pool_now", timeout=60)
    assert ended is not None and ended.returncode == 0 and ended.stdout == "ended\n", ended
    # What it replaces: Pool.terminate waits for ever on the lock the dead worker held.
    assert _end("terminate", timeout=10) is None
