"""The shipped reader: its weights and record, predict without --workdir, init_from, test-time views."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import REPO, run_module

from svhn_jax import pretrained
from svhn_jax.core.workdir import tree_sha256
from svhn_jax.infer import reader as reading

INFO = json.loads((pretrained.folder("reader") / "info.json").read_text())


def test_shipped_weights_are_the_recorded_ones_and_fit_the_budget():
    config, _, variables = pretrained.load("reader")
    assert tree_sha256(variables["params"]) == INFO["params_sha256"]
    assert config.model == "reader_cnn" and config.recipe == "seed32_grey"
    assert "configs/reader.py" in INFO["command"]
    size = sum(p.stat().st_size for p in pretrained.DIR.rglob("*") if p.is_file())
    assert size <= 40 * 2**20  # issue 27: all shipped weights within 40 MB


def _reader_config(tiny_config, **overrides):
    return tiny_config(model="reader_cnn", head="length", dropout_rate=0.3, augment=True, standardize=True,
                       **overrides)


@pytest.mark.slow
def test_init_from_pretrained_starts_training_from_the_shipped_parameters_exactly(tiny_config, tmp_path):
    from svhn_jax import trainer as train
    # Learning rate 0: two Adam steps leave the parameters as they started, so the final hash is the start's.
    config = _reader_config(tiny_config, init_from="pretrained", learning_rate=0.0, num_train_steps=2,
                            log_every_steps=1, eval_every_steps=2, checkpoint_every_steps=2)
    final = train.train_and_evaluate(config, tmp_path / "finetune")
    assert final["params_sha256"] == INFO["params_sha256"]
    # A workdir works as a source too: fine-tuning from that run starts from its (shipped) parameters.
    again = train.train_and_evaluate(_reader_config(
        tiny_config, init_from=str(tmp_path / "finetune"), learning_rate=0.0, num_train_steps=2,
        log_every_steps=1, eval_every_steps=2, checkpoint_every_steps=2), tmp_path / "from_workdir")
    assert again["params_sha256"] == INFO["params_sha256"]


@pytest.mark.slow
def test_init_from_a_model_of_other_shapes_is_one_line(tiny_config, tmp_path):
    from svhn_jax import trainer as train
    with pytest.raises(pretrained.PretrainedError, match="other layers or shapes"):
        train.train_and_evaluate(tiny_config(init_from="pretrained"), tmp_path / "seed")  # seed_cnn


def test_vote_sums_confidence_per_reading_and_averages_over_views():
    lengths = np.array([2, 2, 3, 2])
    digits = np.array([[4, 2, 10, 10, 10], [4, 2, 10, 10, 10], [4, 2, 1, 10, 10], [1, 7, 10, 10, 10]])
    length, best, confidence = reading.vote(lengths, digits, np.array([0.5, 0.4, 0.95, 0.2]))
    assert (length, list(best[:length])) == (3, [4, 2, 1])  # 0.95 beats 0.5 + 0.4
    assert confidence == pytest.approx(0.95 / 4)
    assert reading.ranked(lengths, digits, np.array([0.5, 0.4, 0.95, 0.2])) == [
        ("421", pytest.approx(0.95 / 4)), ("42", pytest.approx(0.9 / 4)), ("17", pytest.approx(0.2 / 4))]
    one = reading.vote(lengths[:1], digits[:1], np.array([0.7]))
    assert one[0] == 2 and one[2] == pytest.approx(0.7)


def test_views_of_a_box_are_the_training_crop_and_its_scaled_and_shifted_copies():
    image = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    box = (30, 15, 30, 24)
    crops = reading.views(image, "seed32_grey", box, tta=True)
    assert crops.shape == (27, 32, 32, 1)
    np.testing.assert_array_equal(crops[13], reading.preprocess(image, "seed32_grey", box))  # scale 1, no shift
    assert len({c.tobytes() for c in crops}) == 27
    np.testing.assert_array_equal(reading.views(image, "seed32_grey", box, tta=False)[0], crops[13])
    assert reading.views(image, "seed32_grey", None, tta=True).shape == (1, 32, 32, 1)


@pytest.mark.slow
def test_predict_without_workdir_reads_the_shipped_samples():
    result = run_module("svhn_jax.predict", "--json", "--boxes=samples/labels.csv", "samples/")
    assert result.returncode == 0, result.stderr[-2000:]
    answers = {json.loads(line)["file"].split("/")[-1]: json.loads(line) for line in result.stdout.splitlines()}
    with open(REPO / "samples" / "labels.csv") as f:
        truth = {row["file"]: row["number"] for row in csv.DictReader(f)}
    assert set(answers) == set(truth)
    right = {name for name, a in answers.items() if a["reading"] == truth[name]}
    assert right >= READ_RIGHT, sorted(READ_RIGHT - right)


READ_RIGHT = {"svhn_train_1.png", "svhn_train_2.png", "svhn_train_3.png", "synthetic_1.png", "synthetic_2.png",
              "synthetic_3.png", "synthetic_4.png"}  # what the shipped reader reads (svhn_train_4: 193 for 93)


def test_next_readings_are_the_other_readings_best_first_at_their_highest_score():
    from svhn_jax.infer.whole_photo import next_readings
    scored = [("23", 0.8), ("28", 0.1), ("", 0.05), ("28", 0.3), ("3", 0.2), ("123", 0.01), ("7", 0.001)]
    assert next_readings("23", scored) == [["28", 0.3], ["3", 0.2], ["123", 0.01]]
    assert next_readings("23", [("23", 0.9)]) == []
