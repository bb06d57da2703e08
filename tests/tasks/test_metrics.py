"""Metrics on hand-made predictions and logits whose answers are worked out by hand."""
import json

import numpy as np
import pytest

from svhn_jax.data.store import encode_labels
from svhn_jax.models import heads
from svhn_jax.tasks import metrics

P = metrics.PAD


def labels(*seqs):
    return encode_labels(list(seqs))


# Four examples: "12" right, "345" read as "34" (last digit missed), "6" read as "8",
# "7890" read as "78901" (one digit too many).
TRUE_LENGTHS, TRUE_DIGITS = labels("12", "345", "6", "7890")
PRED_DIGITS = np.array([[1, 2, P, P, P], [3, 4, P, P, P], [8, P, P, P, P], [7, 8, 9, 0, 1]])
PRED_LENGTHS = np.array([2, 2, 1, 5])
CONFIDENCE = np.array([0.9, 0.5, 0.7, 0.2])


def test_sequence_and_digit_accuracy():
    assert metrics.sequence_correct(PRED_DIGITS, TRUE_DIGITS).tolist() == [True, False, False, False]
    # True digits: 2 + 3 + 1 + 4 = 10; right: 1,2 / 3,4 / - / 7,8,9,0 = 8.
    assert metrics.digit_accuracy(PRED_DIGITS, TRUE_LENGTHS, TRUE_DIGITS) == pytest.approx(0.8)


def test_accuracy_per_length():
    correct = np.array([True, False, True, True, False])
    accuracy, count = metrics.accuracy_per_length(correct, np.array([1, 1, 2, 2, 4]))
    assert count.tolist() == [0, 2, 2, 0, 1, 0]
    assert accuracy[1] == 0.5 and accuracy[2] == 1.0 and accuracy[4] == 0.0
    assert np.isnan(accuracy[[0, 3, 5]]).all()


def test_digit_confusion_counts_only_predicted_digits_inside_the_true_length():
    confusion, missed = metrics.digit_confusion(PRED_DIGITS, TRUE_LENGTHS, TRUE_DIGITS)
    expected = np.zeros((10, 10), int)
    for t, p in [(1, 1), (2, 2), (3, 3), (4, 4), (6, 8), (7, 7), (8, 8), (9, 9), (0, 0)]:
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion, expected)
    assert missed == 1  # the "5" of "345"; the extra "1" of "78901" is outside the true length


def test_length_confusion():
    confusion = metrics.length_confusion(np.array([2, 2, 1, 5, 0]), np.array([2, 3, 1, 4, 1]))
    expected = np.zeros((6, 6), int)
    expected[2, 2] = expected[3, 2] = expected[1, 1] = expected[4, 5] = expected[1, 0] = 1
    np.testing.assert_array_equal(confusion, expected)


def test_coverage_curve_and_coverage_at_accuracy():
    confidence = np.array([0.1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.95])
    correct = np.array([0, 1, 1, 0, 1, 1, 1, 1, 0, 1], bool)
    coverage, accuracy, threshold = metrics.coverage_curve(confidence, correct)
    np.testing.assert_allclose(coverage, np.arange(1, 11) / 10)
    # Sorted hits: 1 1 1 0 1 1 1 1 0 0.
    np.testing.assert_allclose(accuracy, [1, 1, 1, 3 / 4, 4 / 5, 5 / 6, 6 / 7, 7 / 8, 7 / 9, 7 / 10])
    np.testing.assert_allclose(threshold, [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert metrics.coverage_at_accuracy(confidence, correct, 0.98) == (0.3, 0.8)
    # The largest coverage counts, not the first drop: 7/8 >= 0.85 at coverage 0.8.
    assert metrics.coverage_at_accuracy(confidence, correct, 0.85) == (0.8, 0.3)
    assert metrics.coverage_at_accuracy(confidence, correct, 0.7) == (1.0, 0.1)
    assert metrics.coverage_at_accuracy(confidence, np.zeros(10, bool), 0.5) == (0.0, None)


def test_coverage_answers_equal_confidences_together():
    confidence = np.array([0.9, 0.5, 0.5, 0.5])
    correct = np.array([True, True, False, True])
    coverage, accuracy, threshold = metrics.coverage_curve(confidence, correct)
    np.testing.assert_allclose(coverage, [0.25, 1.0])
    np.testing.assert_allclose(accuracy, [1.0, 0.75])
    np.testing.assert_allclose(threshold, [0.9, 0.5])
    # Without tie handling, the first two 0.5s would give 2/2 at coverage 0.5.
    assert metrics.coverage_at_accuracy(confidence, correct, 0.9) == (0.25, 0.9)
    assert metrics.coverage_curve(np.zeros(0), np.zeros(0, bool))[0].shape == (0,)


def test_evaluation_metrics_from_hand_made_logits():
    """Blank-head logits -> heads.decode -> every metric, checked by hand."""
    def one_hot_logits(seq, strength):
        logits = np.zeros((5, 11), np.float32)
        for i in range(5):
            logits[i, int(seq[i]) if i < len(seq) else P] = strength
        return logits

    true_lengths, true_digits = labels("12", "345", "6", "7890")
    read = ["12", "34", "8", "78901"]
    strength = [12.0, 8.0, 10.0, 6.0]
    logits = {"digits": np.stack([one_hot_logits(s, k) for s, k in zip(read, strength)])}
    pred_lengths, pred_digits, confidence = (np.asarray(a) for a in heads.decode(logits))
    np.testing.assert_array_equal(pred_lengths, [2, 2, 1, 5])
    np.testing.assert_array_equal(pred_digits, PRED_DIGITS)
    # Per position: p = e^k / (e^k + 10); confidence is the product over the five positions.
    expected_conf = [(np.exp(k) / (np.exp(k) + 10)) ** 5 for k in strength]
    np.testing.assert_allclose(confidence, expected_conf, rtol=1e-5)

    m = metrics.evaluation_metrics(pred_lengths, pred_digits, confidence, true_lengths, true_digits)
    json.dumps(m)  # JSON-serialisable as written into final_metrics.json
    assert m["eval_sequence_accuracy"] == 0.25
    assert m["eval_digit_accuracy"] == pytest.approx(0.8)
    assert m["eval_length_accuracy"] == 0.5
    assert m["num_eval_examples"] == 4
    assert m["eval_digits_missed"] == 1
    # Most confident first: "12" (right), then the three wrong ones.
    assert m["eval_coverage_at_98"] == 0.25 and m["eval_threshold_at_98"] == pytest.approx(expected_conf[0])
    assert m["eval_coverage_at_95"] == 0.25
    assert m["eval_accuracy_per_length"] == {"1": 0.0, "2": 1.0, "3": 0.0, "4": 0.0}
    assert m["eval_count_per_length"] == {"1": 1, "2": 1, "3": 1, "4": 1}
    assert np.trace(np.array(m["eval_digit_confusion"])) == 8 and m["eval_digit_confusion"][6][8] == 1
    assert m["eval_length_confusion"][3][2] == 1 and m["eval_length_confusion"][4][5] == 1


def test_evaluation_metrics_on_no_examples():
    m = metrics.evaluation_metrics(np.zeros(0, int), np.zeros((0, 5), int), np.zeros(0),
                                   np.zeros(0, int), np.zeros((0, 5), int))
    assert m["num_eval_examples"] == 0 and m["eval_sequence_accuracy"] == 0.0
    assert m["eval_coverage_at_98"] == 0.0 and m["eval_threshold_at_98"] is None
