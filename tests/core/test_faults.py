"""Crash safety and failures: kill -9, SIGTERM or Ctrl-C then resume, corrupt checkpoints, a second run on
the same workdir, --overwrite, partial metrics lines, non-finite loss, bad workdirs and configs, disk full.

Every failure must end in one line (no traceback) with its exit status, and lose or mislabel nothing
already saved: where a rerun follows, it must give the uninterrupted run's parameters bit for bit.
"""
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_module, start_module

pytestmark = pytest.mark.slow

TINY = ["--config=configs/test.py", "--config.num_train_steps=24", "--config.checkpoint_every_steps=4",
        "--config.eval_every_steps=100"]
# Long enough to be stopped part way (120 steps: 5 s or more on a 2-core machine).
LONG = [*TINY, "--config.num_train_steps=120", "--config.checkpoint_every_steps=40"]


def sha(workdir):
    return json.loads((workdir / "final_metrics.json").read_text())["params_sha256"]


def last_line(text):
    assert "Traceback" not in text, text[-3000:]
    return text.strip().splitlines()[-1]


def wait_for(condition, proc, timeout=240):
    """Waits until `condition()` holds while `proc` still runs (fails if it ended first)."""
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended too early"
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def metrics_keys(workdir):
    """(step, split) of every metrics.jsonl record, all of which must parse."""
    return [(r["step"], r["split"]) for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())]


def assert_clean_metrics(workdir):
    keys = metrics_keys(workdir)
    assert len(set(keys)) == len(keys), "a (step, split) logged twice"
    assert [k[0] for k in keys] == sorted(k[0] for k in keys), "steps out of order"


def saved_files(workdir):
    """{path: bytes} of what a run saved (not its lock, which names the latest process, nor TensorBoard's)."""
    return {p: p.read_bytes() for p in workdir.rglob("*")
            if p.is_file() and p.name != ".lock" and "tensorboard" not in p.parts}


def largest_file(folder):
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


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
    import jax
    import numpy as np

    from svhn_jax.infer import weights
    if (tmp_path / "checkpoints").exists() and any((tmp_path / "checkpoints").iterdir()):
        _, _, variables = weights.from_workdir(tmp_path)
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


@pytest.fixture(scope="module")
def straight(prepared, tmp_path_factory):
    """LONG run without interruption: the result every interrupted run must reproduce."""
    workdir = tmp_path_factory.mktemp("straight")
    result = run_module("svhn_jax.main", *LONG, f"--config.data_dir={prepared}", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [40, 80, 120]
    return workdir


def logged_steps(workdir):
    path = workdir / "metrics.jsonl"
    return [json.loads(line)["step"] for line in path.read_text().splitlines()[:-1]] if path.exists() else []


def stop_part_way(prepared, workdir, signum, tmp_path):
    """Starts LONG in `workdir`, sends `signum` at a random step after its step-40 checkpoint, and
    checks it saved the step it stopped at and said so in one line; returns that step."""
    proc = start_module("svhn_jax.main", *LONG, f"--config.data_dir={prepared}", f"--workdir={workdir}",
                        output=tmp_path / "stopped.log")
    target = random.randint(42, 90)
    wait_for(lambda: any(s >= target for s in logged_steps(workdir)), proc)
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == 128 + signum
    line = last_line((tmp_path / "stopped.log").read_text())
    name = signal.Signals(signum).name
    assert line.startswith(f"error: stopped by {name} after step ") and "run the same command to resume" in line
    step = int(line.split(" after step ")[1].split()[0])
    assert 40 < step < 120 and (workdir / "checkpoints" / str(step)).is_dir()
    assert not (workdir / "final_metrics.json").exists()
    return step


def test_sigterm_saves_a_checkpoint_and_the_rerun_gives_the_uninterrupted_result(prepared, straight, tmp_path):
    """Preemption: the step under way finishes, its checkpoint is saved, exit 143 (128 + SIGTERM)."""
    workdir = tmp_path / "run"
    stop_part_way(prepared, workdir, signal.SIGTERM, tmp_path)
    resumed = run_module("svhn_jax.main", *LONG, f"--config.data_dir={prepared}", f"--workdir={workdir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert sha(workdir) == sha(straight)
    assert_clean_metrics(workdir)


def test_ctrl_c_saves_a_checkpoint_and_exits_130(prepared, tmp_path):
    stop_part_way(prepared, tmp_path / "run", signal.SIGINT, tmp_path)


@pytest.mark.parametrize("when", ["loading libraries", "preparing the run"])
def test_ctrl_c_before_training_is_one_line(when, prepared, tmp_path):
    """Before the training loop there is nothing to save: stop at once, in one line, exit 130."""
    proc = start_module("svhn_jax.main", *LONG, f"--config.data_dir={prepared}", f"--workdir={tmp_path}",
                        output=tmp_path / "log")
    if when == "loading libraries":
        time.sleep(1.0)
    else:
        wait_for(lambda: (tmp_path / ".lock").exists() and (tmp_path / ".lock").read_text(), proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    line = last_line((tmp_path / "log").read_text())
    assert line == "error: interrupted (SIGINT)" or line.startswith("error: stopped by SIGINT after step ")


def test_truncated_newest_checkpoint_after_sigterm_falls_back_to_the_previous_one(prepared, straight, tmp_path):
    workdir = tmp_path / "run"
    step = stop_part_way(prepared, workdir, signal.SIGTERM, tmp_path)
    victim = largest_file(workdir / "checkpoints" / str(step))
    os.truncate(victim, victim.stat().st_size // 2)
    resumed = run_module("svhn_jax.main", *LONG, f"--config.data_dir={prepared}", f"--workdir={workdir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stderr
    assert f"skipping the checkpoint of step {step} in {workdir / 'checkpoints'}: it does not restore" in resumed.stderr
    assert (workdir / "broken-checkpoints" / str(step)).is_dir()  # kept for a look, out of the way
    assert sha(workdir) == sha(straight)


def flip_bytes(checkpoint):
    victim = largest_file(checkpoint)
    data = bytearray(victim.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x01
    victim.write_bytes(bytes(data))


def drop_metadata(checkpoint):
    (checkpoint / "default" / "_METADATA").unlink()


def drop_item_folder(checkpoint):
    """The checkpoint's whole item folder gone: orbax once took this step's layout (no "default" item) for
    every step after it, and so refused the intact older ones too."""
    shutil.rmtree(checkpoint / "default")


@pytest.mark.parametrize("corrupt, reasons", [
    (flip_bytes, ["it holds non-finite values", "its data does not match the SHA-256 saved with it",
                  "it does not restore: "]),
    (drop_metadata, ["it does not restore: "]),
    (drop_item_folder, ["it does not restore: "])])
def test_corrupt_newest_checkpoint_is_skipped_for_the_previous_one(corrupt, reasons, prepared, straight, tmp_path):
    """Flipped bits either restore without a complaint (garbage, caught by the checks after the restore)
    or make TensorStore refuse the chunk: which depends on the bytes hit; a missing file does not
    restore. Each checkpoint is judged on its own, for a resume and for `predict --workdir` /
    `init_from` (`infer.weights.from_workdir`) alike."""
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    (workdir / "final_metrics.json").unlink()
    corrupt(workdir / "checkpoints" / "120")
    from svhn_jax.core.workdir import tree_sha256
    from svhn_jax.infer.weights import from_workdir
    older = tmp_path / "older"  # what predict reads: the newest intact checkpoint, step 80
    shutil.copytree(straight, older)
    shutil.rmtree(older / "checkpoints" / "120")
    assert tree_sha256(from_workdir(workdir)[2]) == tree_sha256(from_workdir(older)[2])
    resumed = run_module("svhn_jax.main", *LONG, f"--config.data_dir={prepared}", f"--workdir={workdir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stderr
    skipped = f"skipping the checkpoint of step 120 in {workdir / 'checkpoints'}: "
    assert any(skipped + reason in resumed.stderr for reason in reasons), resumed.stderr[-2000:]
    assert "Resumed from step 80" in resumed.stderr
    assert sha(workdir) == sha(straight)
    assert_clean_metrics(workdir)


def test_a_checkpoint_is_trusted_only_with_its_own_step_finite_values_and_its_digest():
    import numpy as np

    from svhn_jax.core.state import TrainState
    from svhn_jax.core.workdir import problem_with, tree_sha256
    good = TrainState(step=np.int32(8), params={"w": np.ones(3, np.float32)}, batch_stats={}, opt_state=())
    digest = {"state_sha256": tree_sha256(good)}
    assert problem_with(good, 8, digest) is None and problem_with(good, 8, {}) is None
    assert problem_with(good, 12, digest) == "it holds step 8"
    nan = good.replace(params={"w": np.array([1, np.nan, 1], np.float32)})
    assert problem_with(nan, 8, {}) == "it holds non-finite values"
    changed = good.replace(params={"w": np.full(3, 2, np.float32)})
    assert problem_with(changed, 8, digest) == "its data does not match the SHA-256 saved with it"


def test_no_usable_checkpoint_is_one_line_and_keeps_them(prepared, straight, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    for step in (40, 80, 120):
        drop_metadata(workdir / "checkpoints" / str(step))
    result = run_module("svhn_jax.main", *LONG, f"--config.data_dir={prepared}", f"--workdir={workdir}")
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        f"error: no checkpoint in {workdir / 'checkpoints'} is usable (steps 120, 80, 40; see the warnings above): "
        "move them aside, or start afresh with --overwrite")
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [40, 80, 120]
    assert sha(workdir) == sha(straight)


def test_a_second_run_on_a_workdir_in_use_is_refused(prepared, straight, tmp_path):
    """The lock names the first run's process; kill -9 releases it; the rerun resumes cleanly."""
    workdir = tmp_path / "run"
    args = [*LONG, f"--config.data_dir={prepared}", f"--workdir={workdir}"]
    first = start_module("svhn_jax.main", *args, output=tmp_path / "first.log")
    wait_for(lambda: (workdir / ".lock").exists() and (workdir / ".lock").read_text(), first)
    second = run_module("svhn_jax.main", *args)
    assert first.poll() is None, "the first run ended before the second one tried"
    assert second.returncode == 1
    assert last_line(second.stderr).startswith(f"error: workdir {workdir} is in use by process {first.pid} on ")
    first.kill()  # kill -9: the kernel drops the lock with the process
    first.wait()
    resumed = run_module("svhn_jax.main", *args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert sha(workdir) == sha(straight)
    assert_clean_metrics(workdir)


def test_a_partial_last_metrics_line_is_dropped_on_resume(prepared, straight, tmp_path):
    args = [*LONG, f"--config.data_dir={prepared}", f"--workdir={tmp_path}"]
    half = run_module("svhn_jax.main", *args, "--config.num_train_steps=60")
    assert half.returncode == 0, half.stderr[-2000:]
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 62, "split": "train", "loss": 1.')  # a run killed while writing this line
    resumed = run_module("svhn_jax.main", *args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{tmp_path / 'metrics.jsonl'}: dropped its partial last line" in resumed.stderr
    assert sha(tmp_path) == sha(straight)
    assert_clean_metrics(tmp_path)
    assert (60, "eval") in metrics_keys(tmp_path)  # the shorter run's final evaluation is kept


def test_overwrite_moves_the_earlier_run_aside_and_starts_afresh(prepared, tmp_path):
    common = [*TINY, f"--config.data_dir={prepared}", "--config.num_train_steps=4"]
    first = run_module("svhn_jax.main", *common, f"--workdir={tmp_path / 'run'}")
    assert first.returncode == 0, first.stderr[-2000:]
    fresh = run_module("svhn_jax.main", *common, "--config.seed=5", f"--workdir={tmp_path / 'fresh'}")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    old_sha = sha(tmp_path / "run")

    over = run_module("svhn_jax.main", *common, "--config.seed=5", "--overwrite", f"--workdir={tmp_path / 'run'}")
    assert over.returncode == 0, over.stderr[-2000:]
    assert "--overwrite: moved the earlier run (checkpoints, config.json, eval_predictions.npz, final_metrics.json, " \
           f"metrics.jsonl, tensorboard) to {tmp_path / 'run'}/overwritten-" in over.stderr
    assert sha(tmp_path / "run") == sha(tmp_path / "fresh")  # seed 5's parameters, not seed 0's resumed
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 5
    (aside,) = (tmp_path / "run").glob("overwritten-*")
    assert json.loads((aside / "config.json").read_text())["seed"] == 0 and sha(aside) == old_sha
    assert sorted(p.name for p in (aside / "checkpoints").iterdir()) == ["4"]


def test_a_failing_overwrite_leaves_the_earlier_run(prepared, tmp_path):
    common = [*TINY, f"--config.data_dir={prepared}", "--config.num_train_steps=4", f"--workdir={tmp_path}"]
    first = run_module("svhn_jax.main", *common)
    assert first.returncode == 0, first.stderr[-2000:]
    before = saved_files(tmp_path)
    bad = run_module("svhn_jax.main", *common, "--config.head=length", "--config.model=no_such_model", "--overwrite")
    assert bad.returncode == 1 and "no_such_model" in last_line(bad.stderr)
    assert saved_files(tmp_path) == before


@pytest.mark.parametrize("key, value", [("batch_size", "0"), ("batch_size", "-4"), ("log_every_steps", "0")])
def test_non_positive_sizes_and_intervals_are_refused_before_anything_starts(key, value, tmp_path):
    result = run_module("svhn_jax.main", "--config=configs/test.py", f"--config.{key}={value}",
                        f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 1
    assert last_line(result.stderr) == f"error: config key {key} must be a positive integer, got {value}"
    assert not (tmp_path / "run").exists()


def test_disk_full_writing_the_final_predictions_keeps_the_earlier_results(prepared, straight, tmp_path):
    """A finished run evaluated again with files limited to 64 KiB: eval_predictions.npz cannot be written."""
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    before = saved_files(workdir)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    proc = subprocess.run([sys.executable, "-m", "svhn_jax.main", *LONG, f"--config.data_dir={prepared}",
                           f"--workdir={workdir}"], cwd=REPO, capture_output=True, text=True,
                          preexec_fn=limit, timeout=300)
    assert proc.returncode == 1
    assert last_line(proc.stderr) == (f"error: could not write {workdir / 'eval_predictions.npz'} (File too large); "
                                      "its earlier content, if any, is kept")
    assert saved_files(workdir) == before  # no temporary file left, nothing changed
