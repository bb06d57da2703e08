"""infer/whole_photo: the shipped calibrator (fitted on synthetic scenes by scripts/fit_calibrator.py) weighs
both readers, and a photo read without a localiser names no box."""
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from svhn_jax.infer import whole_photo as wp


def _vote(text: str, line: float = 0.0, svhn: float = 0.0, localiser: float = 0.0, height: float = 40.0) -> wp.Vote:
    where = wp.Line(np.zeros((8, 8, 3), np.uint8), np.array([10.0, 10.0, 60.0, height]), localiser=localiser)
    return wp.Vote(text, line, line, svhn, where)


def _p(votes: list[wp.Vote], text: str = "42") -> float:
    texts, feats = wp.features(votes, 200)
    return float(wp.Calibrator.load().probability(feats)[texts.index(text)])


def test_the_shipped_calibrator_is_fitted_over_these_features():
    data = json.loads(wp.CALIBRATOR.read_text())
    assert tuple(data["features"]) == wp.FEATURES and len(data["weights"]) == len(wp.FEATURES)
    assert 0.5 <= data["min_confidence"] < 1.0 and data["fitted_on"]["scenes"] > 0
    calibrator = wp.Calibrator.load()
    assert calibrator.weights == tuple(float(w) for w in data["weights"])
    assert wp.DEFAULT_MIN_CONFIDENCE == data["min_confidence"]


def test_a_reading_only_the_svhn_reader_gives_counts_by_its_confidence():
    # A box the line reader reads nothing in: the SVHN reader's confidence decides (not a constant).
    sure, unsure = _p([_vote("42", svhn=0.99)]), _p([_vote("42", svhn=0.2)])
    assert sure > unsure and sure > 0.1


def test_agreement_between_the_readers_raises_the_probability():
    alone = _p([_vote("42", line=0.9)])
    agreed = _p([_vote("42", line=0.9), _vote("42", svhn=0.9)])
    disputed = _p([_vote("42", line=0.9), _vote("47", svhn=0.9)])
    assert agreed > alone and agreed > disputed


@pytest.mark.slow
def test_without_a_localiser_the_whole_photo_is_read_and_no_box_named():
    from svhn_jax.infer.reader import Reader
    image = Image.new("RGB", (160, 96), (235, 235, 225))
    ImageDraw.Draw(image).text((40, 30), "47", fill=(10, 10, 10), font_size=40)
    photo = np.asarray(image)
    result = wp.read_photo(Reader.load(), None, photo, tta=False)
    assert result["box"] is None and result["box_confidence"] is None and result["no_number"] is None
    assert result["reading"] == "47" and 0.0 <= result["confidence"] <= 1.0
    boxed = wp.read_photo(Reader.load(), None, photo, (30, 20, 90, 60), tta=False)
    assert boxed["box"] == [30, 20, 90, 60] and boxed["reading"] == "47"
