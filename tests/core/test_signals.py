"""core.signals.WorkerPool: worker processes that leave signals to the command, ended at once in public API.

Real processes: a program starts a pool, its workers are killed as a signal to the whole process group
kills them, and the pool must still end at once, print nothing and leave no process behind.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from conftest import REPO

PROGRAM = textwrap.dedent("""
    import multiprocessing, os, signal, sys, time
    from svhn_jax.core.signals import WorkerPool
    if __name__ == "__main__":
        pool = WorkerPool(2)
        assert list(pool.imap(abs, [(-1,), (-2,)])) == [1, 2]  # the workers up, then idle
        workers = multiprocessing.active_children()
        assert len(workers) == 2, workers
        if sys.argv[1] == "killed":
            for worker in workers:
                os.kill(worker.pid, signal.SIGKILL)  # as a signal to the whole process group does
            time.sleep(0.3)
        if sys.argv[1] == "busy":
            pool.executor.submit(time.sleep, 60)
            time.sleep(0.5)
        pool.end_now()
        assert multiprocessing.active_children() == []
        print("ended", flush=True)
""")


def _session_processes(sid: int) -> list[str]:
    """The processes still alive in the session `sid` (the program's, started with start_new_session)."""
    ps = subprocess.run(["ps", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if int(line.split()[1]) == sid and not line.split()[2].startswith("Z")]


def _end(how: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM, how], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    start = time.monotonic()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            subprocess.run(["kill", "-9", "--", f"-{proc.pid}"], check=False)
            proc.wait()
    assert proc.returncode == 0 and out == "ended\n" and err == "", (how, proc.returncode, out, err)
    assert time.monotonic() - start < 30, how  # at once: not after a worker's 60 s task
    deadline = time.monotonic() + 10  # the resource tracker ends when the program's end closes its pipe
    while (left := _session_processes(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], left


def test_a_pool_whose_workers_were_killed_ends_at_once():
    _end("killed")


def test_a_pool_with_a_task_running_ends_at_once():
    _end("busy")


def test_a_pool_that_is_done_ends_with_nothing_left():
    _end("idle")
