"""scripts/benchmark.py end to end on a tiny measurement: its JSON records, and one-line errors."""
import json
import subprocess
import sys

from conftest import REPO


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_benchmark_prints_a_train_record_and_a_summary():
    proc = _run("--model=seed_cnn", "--batch_size=8", "--steps=3", "--rounds=1", "--first_step=false",
                "--eval_examples=16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    train, summary = records
    assert train["measurement"] == "train" and train["model"] == "seed_cnn" and train["batch_size"] == 8
    assert train["device_kind"] == "cpu" and train["device_count"] == 1
    assert train["train_images_per_second"] > 0 and train["eval_images_per_second"] > 0
    assert 0 < train["fraction_of_peak"] < 1 and train["step_gflop"] > 0
    assert summary == {"measurement": "summary", "model": "seed_cnn", "batch_size": 8, "cpu_devices": 1,
                       "rounds": 1, "jax_train_images_per_second": train["train_images_per_second"]}


def test_benchmark_refuses_bad_arguments_in_one_line():
    for args, words in ((["--model=alexnet"], "unknown model alexnet"),
                        (["--batch_size=big"], "--batch_size must be integers"),
                        (["--torch", "--torch_python=/nonexistent/python"], "--torch needs")):
        proc = _run(*args)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert words in proc.stderr.strip().splitlines()[-1], proc.stderr
