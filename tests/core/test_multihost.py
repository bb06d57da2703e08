"""Multi-host training through jax.distributed: 2 processes on 127.0.0.1 equal 1 process with 2 devices,
for every task (the one trainer runs them all)."""
import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import REPO, run_module

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TINY_LOCALISER = ["--config=configs/localiser.py", "--config.num_scenes_train=64", "--config.num_scenes_test=16",
                  "--config.batch_size=16", "--config.num_train_steps=8", "--config.log_every_steps=4",
                  "--config.eval_every_steps=4", "--config.checkpoint_every_steps=4"]


@pytest.mark.parametrize("task,config", [("reader", ["--config=configs/test.py"]), ("localiser", TINY_LOCALISER)])
def test_two_processes_equal_one_process_with_two_devices(data_dir, tmp_path, task, config):
    common = [*config, f"--config.data_dir={data_dir}"]
    # The same SPMD program in one process (shard_map; auto would pick host_reduce there, whose
    # separately compiled update rounds differently).
    single = run_module("svhn_jax.main", *common, f"--workdir={tmp_path / 'single'}", "--config.parallel=shard_map",
                        devices=2)
    assert single.returncode == 0, single.stderr[-3000:]

    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, "-m", "svhn_jax.main", *common, f"--workdir={tmp_path / 'multi'}",
                               f"--coordinator_address={address}", "--num_processes=2", f"--process_id={i}"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]

    multi = json.loads((tmp_path / "multi" / "final_metrics.json").read_text())
    one = json.loads((tmp_path / "single" / "final_metrics.json").read_text())
    assert multi["process_count"] == 2 and multi["device_count"] == 2 and one["process_count"] == 1
    # Same devices, same shards, a two-term all-reduce (a + b is exact in either order): bitwise equal.
    assert multi["params_sha256"] == one["params_sha256"] and multi["task"] == one["task"] == task
    if task == "reader":
        assert multi["eval_sequence_accuracy"] == one["eval_sequence_accuracy"]
        assert multi["num_eval_examples"] == one["num_eval_examples"] == 100
    else:
        assert multi["eval_box_found"] == one["eval_box_found"] and multi["num_train_examples"] == 64
    assert sorted(p.name for p in (tmp_path / "multi" / "checkpoints").iterdir()) == ["4", "8"]


def test_incomplete_distributed_flags_are_one_line_errors(tmp_path):
    result = run_module("svhn_jax.main", "--config=configs/test.py", f"--workdir={tmp_path}", "--num_processes=2")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: multi-process runs need --coordinator_address")
