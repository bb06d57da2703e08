"""infer/line_reading: CTC decoding on hand-made probabilities, batching, and stacked single digits joined."""
import numpy as np

from svhn_jax.infer import line_reading as lr


def _steps(classes, p=0.9):
    probs = np.full((len(classes), 11), (1 - p) / 10, np.float32)
    probs[np.arange(len(classes)), classes] = p
    return probs


def test_ctc_greedy_merges_runs_and_drops_blanks():
    # "1 1 blank 1 2" -> "112" (digit d is class 1 + d, blank 0)
    r = lr.ctc_decode(_steps([2, 2, 0, 2, 3]))
    assert r.text == "112" and abs(r.confidence - 0.9) < 1e-6 and abs(r.least - 0.9) < 1e-6
    assert lr.ctc_decode(_steps([0, 0, 0])) == lr.Reading("", 0.0, 0.0)
    mixed = _steps([1, 0, 10])
    mixed[2] = 0.0
    mixed[2, 10] = 0.5
    mixed[2, 0] = 0.5 - 1e-3
    r = lr.ctc_decode(mixed)
    assert r.text == "09" and abs(r.confidence - 0.7) < 1e-6 and abs(r.least - 0.5) < 1e-6


def test_lines_are_batched_by_padded_width_in_powers_of_two():
    crops = [np.zeros((20, 20, 3), np.uint8)] * 3 + [np.zeros((10, 120, 3), np.uint8)]
    batches = lr.line_batches(crops)
    assert [(m, b.shape) for m, b in batches] == [([0, 1, 2], (4, 3, 48, 320)), ([3], (1, 3, 48, 640))]
    assert np.all(batches[0][1][0, :, :, 48:] == 0)  # grey padding on the right


def test_a_column_of_single_digit_boxes_is_joined_top_to_bottom():
    boxes = [(100, 210, 40, 50), (102, 100, 40, 50), (98, 155, 44, 50),  # a column: 100, 155, 210
             (300, 100, 40, 50),                                          # alone, to the right
             (101, 400, 40, 50)]                                          # too far below
    assert lr.stacked_columns(boxes) == [[1, 2, 0]]
    assert lr.stacked_columns([(0, 0, 40, 50), (0, 55, 40, 150)]) == []  # sizes too different


def test_rotate_crop_straightens_a_quad():
    image = np.zeros((50, 80, 3), np.uint8)
    image[10:20, 30:60] = 255
    crop = lr.rotate_crop(image, lr.box_quad((30, 10, 30, 10)))
    assert crop.shape == (10, 30, 3) and crop.min() > 200
    assert [c.shape for c in lr.turned(crop)] == [(30, 10, 3), (30, 10, 3)]
