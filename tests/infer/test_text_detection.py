"""infer/text_detection: DB post-processing on hand-made probability maps, and the detector's input sizes."""
import numpy as np

from svhn_jax.infer import text_detection as td


def test_a_rectangle_of_ones_is_its_box_grown_by_the_unclip_offset():
    prob = np.zeros((100, 200), np.float32)
    prob[40:60, 50:150] = 1.0  # 100 x 20; dilated by 2x2 -> contour 101 x 21 -> minAreaRect 100 x 20 (corners)
    (box,) = td.db_boxes(prob)
    assert abs(box.score - 2000 / (101 * 21)) < 1e-6  # the dilated region: one row and column of zeros
    w, h = 100.0, 20.0
    d = w * h * td.UNCLIP_RATIO / (2 * (w + h))  # 13.33 px on every side
    x0, y0, bw, bh = box.box
    assert abs(bw - (w + 2 * d)) < 1.01 and abs(bh - (h + 2 * d)) < 1.01
    assert abs(x0 + bw / 2 - 100) < 1.01 and abs(y0 + bh / 2 - 50) < 1.01
    assert np.allclose(box.quad[0], [x0, y0]) and box.size[0] > box.size[1]


def test_weak_small_and_empty_regions_give_no_box_and_boxes_are_capped():
    prob = np.zeros((64, 64), np.float32)
    assert td.db_boxes(prob) == []
    prob[10:30, 10:30] = 0.4   # above THRESH, below BOX_THRESH: dropped
    prob[40:41, 40:60] = 1.0   # one pixel high: noise
    assert td.db_boxes(prob) == []
    many = np.zeros((400, 400), np.float32)
    for i in range(10):
        for j in range(10):
            many[i * 40 + 10:i * 40 + 30, j * 40 + 10:j * 40 + 30] = 0.6 + 0.003 * (i * 10 + j)
    boxes = td.db_boxes(many, max_boxes=5)
    assert len(boxes) == 5 and [round(b.score, 3) for b in boxes] == [0.814, 0.811, 0.808, 0.805, 0.803]


def test_detector_sizes_are_multiples_of_32_capped_and_small_photos_raised():
    assert td.detector_size(4000, 3000) == (960, 704)     # longer side capped (720 -> 704)
    assert td.detector_size(100, 50) == (960, 480)        # shorter side raised to 640, within the cap
    assert td.detector_size(800, 800) == (800, 800)
    assert td.detector_size(1, 1) == (640, 640)


def test_a_probability_map_maps_back_to_the_photo():
    def detect(x):
        prob = np.zeros((1, 1, *x.shape[2:]), np.float32)
        prob[0, 0, 100:140, 200:400] = 1.0
        return prob
    image = np.zeros((300, 400, 3), np.uint8)  # -> 864 x 640 (scale 2.13)
    (box,) = td.find_text(detect, image)
    x, y, w, h = box.box
    # the map's 200 x 40 region (x 200-400, y 100-140 of 864 x 640) over 2.16 and 2.13, grown by 26.7 map px a side
    assert np.allclose([x, y, w, h], [80.247, 34.375, 117.284, 43.750], atol=1e-3)
