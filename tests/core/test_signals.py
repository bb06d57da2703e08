"""core.signals.WorkerPool: worker processes that leave signals to the command, ended at once in public API.

Real processes: a program starts a pool, its workers are killed as a signal to the whole process group
kills them, and the pool must still end at once, print nothing and leave no process behind.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
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


LARGE_RESULTS = textwrap.dedent("""
    import numpy as np
    from svhn_jax.core.cli import cli
    from svhn_jax.core.signals import ordered

    def scenes(i):  # as large as a chunk of rendered scenes (12 MB)
        return np.full((250, 128, 128, 3), i % 256, np.uint8)

    @cli
    def main():
        for result in ordered(scenes, [(i,) for i in range(100_000)], 2):
            print(int(result[0, 0, 0, 0]), flush=True)

    if __name__ == "__main__":
        main()
""")


def test_a_signal_to_workers_sending_large_results_ends_the_command_at_once(tmp_path):
    """SIGTERM to the whole process group (as a scheduler or `kill -- -PGID` sends it) while workers hand back
    large results: a worker killed halfway through sending one must not leave the command waiting for the
    rest of it (it did, 4 times in 5, when results went through the executor's pipe)."""
    program = tmp_path / "large_results.py"
    program.write_text(LARGE_RESULTS)
    for delay in (0.0, 0.3, 0.7):
        proc = subprocess.Popen([sys.executable, str(program)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)})
        try:
            assert proc.stdout.readline() == "0\n"  # the workers are sending results
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGTERM)
            err = proc.communicate(timeout=60)[1]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 128 + signal.SIGTERM and err == "error: interrupted (SIGTERM)\n", (delay, err)
        assert not list(tmp_path.glob("svhn_jax_workers-*")), delay  # its results folder removed


CHILD_SIGNALS = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, " \
                "signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)"


def test_a_child_started_by_a_test_gets_the_default_signals():
    """Whatever the suite was started with (see the next test, which runs this one under ignored signals)."""
    child = subprocess.run([sys.executable, "-c", CHILD_SIGNALS], capture_output=True, text=True, check=True)
    assert child.stdout == "True True\n", child


def test_the_children_of_a_suite_started_with_signals_ignored_get_the_default():
    """A suite started as ``cmd &`` from a script (SIGINT ignored) or with SIGTERM ignored: its children still
    start with the default dispositions, and the suite itself still ignores what it was told to."""
    inner = "tests/core/test_signals.py::test_a_child_started_by_a_test_gets_the_default_signals"
    program = textwrap.dedent(f"""
        import signal, subprocess, sys
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", {inner!r}]))
    """)
    suite = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-3000:]  # 0: collected, run and passed


@pytest.mark.parametrize("writer", ["atomic_write", "SplitWriter"])
def test_a_hard_exit_mid_write_leaves_no_temporary_file(writer, tmp_path):
    """`exit_at_once` (a second signal, or an `Interrupted` Python could not pass on) runs no `finally`:
    before, the temporary file of a write under way stayed behind (the scene-rendering signal test's
    ``.train.h5.tmp-PID``); now the writers' unfinished files are removed first."""
    target = tmp_path / "out.h5"
    if writer == "atomic_write":
        body = ("def write(tmp):\n    tmp.write_bytes(b'half')\n    signals.exit_at_once(15)\n"
                f"fileio.atomic_write({str(target)!r}, write)\n")
    else:
        body = ("from svhn_jax.data.store import SplitWriter\n"
                f"with SplitWriter({str(target)!r}, (2, 2, 1), recipe='r', source='s') as w:\n"
                "    signals.exit_at_once(15)\n")
    code = "from svhn_jax.core import fileio, signals\n" + body
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 143 and proc.stderr == "error: interrupted (SIGTERM)\n", proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_hard_exit_leaves_no_worker_behind(tmp_path):
    """`exit_at_once` while a pool's workers render: before, they outlived the command (they ignore
    SIGINT; the group Ctrl-C of the scene-rendering signal test left two per run); now they are killed."""
    program = tmp_path / "hard_exit.py"
    program.write_text(textwrap.dedent("""
        import time
        from svhn_jax.core import signals
        if __name__ == "__main__":
            pool = signals.WorkerPool(2)
            futures = [pool.executor.submit(time.sleep, 60) for _ in range(2)]
            time.sleep(1.0)  # both workers busy
            signals.exit_at_once(2)
    """))
    proc = subprocess.Popen([sys.executable, str(program)], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=120)
        deadline = time.time() + 5
        while _session_processes(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        left = _session_processes(proc.pid)
    finally:
        for line in _session_processes(proc.pid):  # never leave them running, whatever failed
            os.kill(int(line.split()[0]), signal.SIGKILL)
    assert left == []
    assert proc.returncode == 130 and err == "error: interrupted (SIGINT)\n", err[-2000:]
