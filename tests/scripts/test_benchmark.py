"""scripts/benchmark.py end to end on a tiny measurement: its JSON records, and one-line errors."""
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def _run(*args: str) -> subprocess.CompletedProcess:
    """The script as the docs run it: `python scripts/benchmark.py ...` from the checkout, no PYTHONPATH
    (a script's own folder, not the cwd, is on its path: the script itself must find configs/)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "scripts/benchmark.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_benchmark_prints_train_records_and_summaries():
    """One device (auto: shard_map) and two (host_reduce: two programs): the same step, so the same
    FLOPs by XLA's cost analysis (up to the optimiser update, replicated on every device)."""
    proc = _run("--model=seed_cnn", "--batch_size=8", "--steps=3", "--rounds=1", "--first_step=false",
                "--eval_examples=16", "--cpu_devices=1,2", "--parallel=auto", "--profile", "--profile_steps=2",
                "--profile_top=4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    one, two, profile, summary_one, summary_two = records
    for train, devices, mode in ((one, 1, "shard_map"), (two, 2, "host_reduce")):
        assert train["measurement"] == "train" and train["model"] == "seed_cnn" and train["batch_size"] == 8
        assert (train["device_kind"], train["device_count"], train["parallel"]) == ("cpu", devices, mode)
        assert train["train_images_per_second"] > 0 and train["eval_images_per_second"] > 0
        assert 0 < train["fraction_of_peak"] < 1 and train["step_gflop"] > 0
    assert abs(two["step_gflop"] / one["step_gflop"] - 1) < 0.02
    assert summary_one == {"measurement": "summary", "model": "seed_cnn", "batch_size": 8, "cpu_devices": 1,
                           "parallel": "shard_map", "rounds": 1,
                           "jax_train_images_per_second": one["train_images_per_second"]}
    assert (summary_two["cpu_devices"], summary_two["parallel"]) == (2, "host_reduce")
    # The profile (of the last setting): the heaviest XLA ops, read back from the HLO of both programs.
    assert (profile["measurement"], profile["parallel"], profile["steps"]) == ("profile", "host_reduce", 2)
    ops = profile["ops"]
    assert len(ops) == 4 and 0 < sum(o["share"] for o in ops) <= 1
    assert [o["ms_per_step"] for o in ops] == sorted((o["ms_per_step"] for o in ops), reverse=True)
    assert any("convolution" in o["contains"] for o in ops), ops
    assert {o["program"] for o in ops} <= {"jit_per_device", "jit_reduce_and_update"}


def test_benchmark_refuses_bad_arguments_in_one_line():
    for args, words in ((["--model=alexnet"], "unknown model alexnet"),
                        (["--batch_size=big"], "--batch_size must be integers"),
                        (["--parallel=threads"], "--parallel must be among auto,shard_map,pmap,host_reduce"),
                        (["--torch", "--torch_python=/nonexistent/python"], "--torch needs")):
        proc = _run(*args)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert words in proc.stderr.strip().splitlines()[-1], proc.stderr
