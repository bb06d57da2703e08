"""Crash safety and failures: kill -9 then resume, non-finite loss, bad workdirs, disk full."""
import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_module

pytestmark = pytest.mark.slow

TINY = ["--config=configs/test.py", "--config.num_train_steps=24", "--config.checkpoint_every_steps=4",
        "--config.eval_every_steps=100"]


def sha(workdir):
    return json.loads((workdir / "final_metrics.json").read_text())["params_sha256"]


@pytest.fixture(scope="module")
def prepared(data_dir):
    """The tiny config's data made once, so the subprocesses below only train."""
    result = run_module("svhn_jax.main", *TINY, f"--workdir={data_dir}/warmup", f"--config.data_dir={data_dir}",
                        "--config.num_train_steps=1")
    assert result.returncode == 0, result.stderr[-2000:]
    return data_dir


def test_sigkill_then_rerun_gives_the_uninterrupted_result(prepared, tmp_path):
    """With the default devices (no XLA_FLAGS: one CPU device per core, host_reduce on 2+ cores)."""
    args = [*TINY, f"--config.data_dir={prepared}"]
    default_devices = {"XLA_FLAGS": ""}
    straight = run_module("svhn_jax.main", *args, f"--workdir={tmp_path / 'straight'}", env=default_devices)
    assert straight.returncode == 0, straight.stderr[-2000:]

    workdir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "svhn_jax.main", *args, f"--workdir={workdir}"], cwd=REPO,
                            env={**os.environ, "JAX_PLATFORMS": "cpu", **default_devices},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (workdir / "checkpoints" / "4").is_dir() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (workdir / "final_metrics.json").exists()

    resumed = run_module("svhn_jax.main", *args, f"--workdir={workdir}", env=default_devices)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert sha(workdir) == sha(tmp_path / "straight")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(prepared, tmp_path):
    result = run_module("svhn_jax.main", *TINY, f"--config.data_dir={prepared}", f"--workdir={tmp_path}",
                        "--config.learning_rate=1e30", "--config.log_every_steps=1")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: non-finite loss at step ") and "Traceback" not in result.stderr
    assert not (tmp_path / "final_metrics.json").exists()
    # every checkpoint left holds finite parameters
    from svhn_jax import workdir
    import jax
    import numpy as np
    if (tmp_path / "checkpoints").exists() and any((tmp_path / "checkpoints").iterdir()):
        _, _, variables = workdir.load_for_inference(tmp_path)
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(variables))


def test_unwritable_workdir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_module("svhn_jax.main", "--config=configs/test.py", f"--workdir={blocker}/run")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: workdir {blocker}/run is not writable")


def test_workdir_of_another_config_is_refused_unless_overwrite(prepared, tmp_path):
    first = run_module("svhn_jax.main", *TINY, f"--config.data_dir={prepared}", f"--workdir={tmp_path}",
                       "--config.num_train_steps=2")
    assert first.returncode == 0, first.stderr[-2000:]
    other = run_module("svhn_jax.main", *TINY, f"--config.data_dir={prepared}", f"--workdir={tmp_path}",
                       "--config.num_train_steps=2", "--config.learning_rate=0.5")
    assert other.returncode != 0
    assert "holds a run of another config (differs in learning_rate)" in other.stderr.strip().splitlines()[-1]
    assert json.loads((tmp_path / "config.json").read_text())["learning_rate"] != 0.5  # nothing lost


def test_disk_full_while_checkpointing(prepared, tmp_path):
    """Files may not grow past 64 KiB (RLIMIT_FSIZE: writes fail with EFBIG as on a full disk)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    proc = subprocess.run([sys.executable, "-m", "svhn_jax.main", *TINY, f"--config.data_dir={prepared}",
                           f"--workdir={tmp_path}"], cwd=REPO, capture_output=True, text=True,
                          preexec_fn=limit, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: could not write the checkpoint of step 4"), last
    assert "last complete checkpoint (none yet)" in last
    assert not (tmp_path / "checkpoints" / "4").exists()
