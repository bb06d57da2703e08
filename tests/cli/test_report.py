"""report: every figure and the markdown from a tiny trained run, and from a hand-made workdir."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_module
from PIL import Image

from svhn_jax.cli import report
from svhn_jax.data.store import encode_labels


def check_figures(workdir: Path) -> None:
    for name in report.FIGURES:
        with Image.open(workdir / "figures" / name) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 100, name
    assert not [p for p in workdir.rglob("*tmp*")], "no temporary file is left behind"


@pytest.mark.slow
def test_report_cli_on_a_trained_run(workdir):
    result = run_module("svhn_jax.report", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr
    check_figures(workdir)
    text = (workdir / "report.md").read_text()
    for name in report.FIGURES:
        assert f"(figures/{name})" in text
    final = json.loads((workdir / "final_metrics.json").read_text())
    assert f"| sequence accuracy | {final['eval_sequence_accuracy']:.2%} |" in text
    assert f"| examples evaluated | {final['num_eval_examples']:,} |" in text
    assert final["params_sha256"] in text
    assert "Evaluation set and training set." in text  # the synthetic training split is on disk


def write_predictions(workdir: Path, true: list[str], read: list[str], confidence: list[float]) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    t_len, t_dig = encode_labels(true)
    p_len, p_dig = encode_labels(read)
    images = np.random.default_rng(0).integers(0, 256, (len(true), 32, 32, 1), dtype=np.uint8)
    np.savez_compressed(workdir / "eval_predictions.npz", images=images, pred_lengths=p_len, pred_digits=p_dig,
                        confidence=np.array(confidence), true_lengths=t_len, true_digits=t_dig)


def test_report_from_predictions_alone(tmp_path):
    """No config, history or final metrics: every figure is still written, numbers recomputed."""
    write_predictions(tmp_path, ["12", "345", "6", "7890"], ["12", "34", "8", "7890"], [0.9, 0.5, 0.7, 0.95])
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "split": "train", "loss": 2.5}\n{"step": 4, "spl')
    assert report.read_history(tmp_path / "metrics.jsonl") == [{"step": 2, "split": "train", "loss": 2.5}]
    path = report.write_report(tmp_path)
    check_figures(tmp_path)
    text = path.read_text()
    assert "| sequence accuracy | 50.00% |" in text
    assert "| digit accuracy | 80.00% |" in text
    # Most confident first: 7890 (right), 12 (right), 6->8 (wrong): 50 % coverage at 98 %.
    assert "| coverage at 98% accuracy | 50.00% (confidence ≥ 0.9000) |" in text
    assert "| 3 | 1 | 0.00% |" in text and "| 4 | 1 | 100.00% |" in text
    assert "(1 true digits fell after the end" in text
    assert "training split files are not on this machine" in text


@pytest.mark.slow
def test_report_cli_errors_are_one_line(tmp_path):
    missing = run_module("svhn_jax.report", f"--workdir={tmp_path / 'nope'}")
    assert missing.returncode == 1 and missing.stderr.strip() == f"report: {tmp_path / 'nope'}: no such workdir"
    empty = run_module("svhn_jax.report", f"--workdir={tmp_path}")
    assert empty.returncode == 1 and len(empty.stderr.strip().splitlines()) == 1
    assert "eval_predictions.npz is missing" in empty.stderr
    assert not (tmp_path / "report.md").exists()
