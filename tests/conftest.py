"""Shared fixtures: tiny configs whose generated data is made once per test session; the signal
dispositions the tests' children start with; the one reason tests that need ../shared skip for."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

SHARED_ABSENT = (f"needs ../shared ({SHARED}: the data every developer and CI has beside the repository), "
                 "absent here")


# samples/ commits only renders: its four real SVHN photos (official train 1-4; SVHN is for non-commercial
# use, never committed) are copied in from ../shared, the same bytes, for the tests that read them.
REAL_SAMPLES = {REPO / "samples" / f"svhn_train_{i}.png": SHARED / "data" / "svhn_real" / "train" / f"{i}.png"
                for i in range(1, 5)}
for _target, _source in REAL_SAMPLES.items():
    if not _target.exists() and _source.is_file():
        shutil.copyfile(_source, _target)


def needs_shared(*parts: str) -> pytest.MarkDecorator:
    """Skips a test that reads ``../shared/<parts>`` where it is absent: for one reason, said once at the end
    of the run (`pytest_terminal_summary`), when the whole folder is missing, else naming the missing file."""
    path = SHARED.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=SHARED_ABSENT if not SHARED.is_dir() else
                              f"needs {path}, which ../shared lacks")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where ../shared is missing, one line at the end says so and how many tests it skipped."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if SHARED_ABSENT in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} skipped, each because it {SHARED_ABSENT}")


def _still_ignored(signum: int, frame: object) -> None:
    """The suite's stand-in for SIG_IGN (see `children_start_with_default_signals`): nothing happens."""


def children_start_with_default_signals() -> None:
    """A suite started with SIGINT (or SIGTERM) ignored (``cmd &`` in a script, ``nohup``-style launchers)
    would pass that to every process a test starts, and the tests that signal their children would
    fail: an ignored signal stays ignored across exec. A signal the suite ignores is handled instead by
    a handler that does nothing: the suite still ignores it, and its children, since a handled signal
    is reset to the default on exec, start with the default (SIGINT: KeyboardInterrupt), however they
    are started (subprocess, multiprocessing)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is signal.SIG_IGN:
            signal.signal(signum, _still_ignored)


children_start_with_default_signals()

# One persistent compilation cache for the whole session, shared with the subprocesses the tests
# start: the same small programs are compiled once, not once per run (a fresh folder per session,
# so the tests never depend on what an earlier session left).
if "SVHN_JAX_COMPILATION_CACHE" not in os.environ:
    os.environ["SVHN_JAX_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="svhn_jax_test_cache_")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def tiny_config(data_dir):
    """configs/test.py with its data under the session's data dir."""
    from configs import test as test_config

    def make(**overrides):
        c = test_config.get_config()
        c.data_dir = str(data_dir)
        for k, v in overrides.items():
            setattr(c, k, v)
        return c
    return make


def module_env(devices: int = 1, env: dict | None = None) -> dict:
    """The environment of a test subprocess: CPU only, with `devices` fake CPU devices."""
    return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            "JAX_PLATFORMS": "cpu", **(env or {})}


def run_module(module: str, *args: str, devices: int = 1, timeout: int = 300,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m module args...` in a fresh process with `devices` fake CPU devices."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=module_env(devices, env),
                          capture_output=True, text=True, timeout=timeout)


def start_module(module: str, *args: str, output: Path, devices: int = 1, env: dict | None = None) -> subprocess.Popen:
    """Starts `python -m module args...` like `run_module` without waiting for it (to signal it, or race
    it), its stdout and stderr into the file `output` (a pipe nobody reads could fill and block it)."""
    with open(output, "w") as out:
        return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=module_env(devices, env),
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory, data_dir):
    """configs/test.py trained once per session (used by test_report and test_predict)."""
    from configs import test as test_config
    from svhn_jax import trainer as train
    path = tmp_path_factory.mktemp("trained_test_config")
    config = test_config.get_config()
    config.data_dir = str(data_dir)
    train.train_and_evaluate(config, path)
    return path
