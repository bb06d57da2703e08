"""Digit-like marks and their lines (`infer.digit_lines`), and the whole-photo step that reads them."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
from conftest import REPO, module_env
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont

from svhn_jax.infer import digit_lines
from svhn_jax.models.decoding import iou

FONT = font_manager.findfont("DejaVu Sans")


def _text_photo(text: str, size: tuple[int, int], where: tuple[int, int], height: int, ink=(30, 30, 30),
                paper=(225, 220, 210), stacked: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A wall with `text` drawn on it (one line, or one character under the other): (photo, ink box)."""
    photo = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(photo)
    font = ImageFont.truetype(FONT, height)
    x, y = where
    boxes = []
    for k, char in enumerate(text if stacked else [text]):
        top = y + k * height  # digits about 0.75 x the font size high: gaps of a third of a digit
        draw.text((x, top), char, font=font, fill=ink)
        boxes.append(draw.textbbox((x, top), char, font=font))
    b = np.array(boxes, float)
    x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    return np.asarray(photo), np.array([x0, y0, x1 - x0, y1 - y0])


def test_marks_side_by_side_or_stacked_make_lines_and_others_do_not():
    row = [[0, 0, 10, 20], [14, 1, 10, 20], [28, 0, 10, 21]]            # three digits on a line
    column = [[200, 0, 12, 20], [201, 26, 12, 20]]                     # two, one under the other
    loose = [[100, 100, 10, 20], [300, 300, 10, 20], [120, 100, 3, 60]]  # alone, or of another height
    lines = digit_lines.lines(np.array(row + column + loose, float))
    assert [b.tolist() for b in lines] == [[0, 0, 38, 21], [200, 0, 13, 46]]
    six = np.array([[16.0 * k, 0, 10, 20] for k in range(6)])  # more digits than a house number has
    assert digit_lines.lines(six) == [] and digit_lines.lines(six[:1]) == []


@pytest.mark.parametrize("ink,paper", [((30, 30, 30), (225, 220, 210)), ((250, 250, 240), (20, 25, 35))],
                         ids=["dark_on_light", "light_on_dark"])
def test_a_number_drawn_on_a_wall_is_found_as_one_line(ink, paper):
    photo, where = _text_photo("4775", (1280, 960), (700, 200), 60, ink, paper)
    marks = digit_lines.components(photo)
    assert max(iou(m, where) for m in marks) < 0.5  # marks are digits, not the whole number
    assert max(iou(line, where) for line in digit_lines.lines(marks)) > 0.7


def test_stacked_digits_are_found_as_a_tall_line():
    photo, where = _text_photo("905", (700, 1000), (300, 150), 120, stacked=True)
    found = digit_lines.lines(digit_lines.components(photo))
    best = max(found, key=lambda line: iou(line, where))
    assert iou(best, where) > 0.7 and best[3] > 2 * best[2]


def test_a_photo_without_digit_like_marks_has_no_lines():
    photo = np.full((600, 800, 3), 200, np.uint8)
    photo[100:400, 100:300] = (90, 60, 40)    # a door
    photo[150:250, 500:700] = (180, 200, 230)  # a window
    assert digit_lines.lines(digit_lines.components(photo)) == []


def test_line_candidates_are_the_lines_the_localiser_agrees_hold_a_number():
    """`whole_photo.line_candidates` with the shipped localiser: the drawn number's line is proposed,
    scored by the close look's confidence; a photo without digit-like marks proposes nothing."""
    from svhn_jax.infer import whole_photo
    from svhn_jax.infer.localiser import Localiser
    loc = Localiser.load()
    photo, where = _text_photo("4775", (1280, 960), (700, 200), 60)
    boxes, confidence = whole_photo.line_candidates(loc, photo)
    assert iou(boxes[0], where) > 0.7 and confidence[0] > 0.5  # measured: IoU 0.92, confidence 0.89
    found, close = whole_photo.close_look(loc, photo, boxes[0])
    assert confidence[0] == close and iou(found, boxes[0]) >= whole_photo.LINE_AGREE_IOU
    blank = np.full((600, 800, 3), 200, np.uint8)
    assert whole_photo.line_candidates(loc, blank) == ([], [])


def _bars(side: int = 1024) -> np.ndarray:
    """The adversarial photo of issue 29: a page of 4 x 11 px bars (a 6 KB PNG), each a digit-like mark
    ("1"-shaped, just taller than `MIN_HEIGHT`): MSER finds 13,090 of them."""
    page = np.full((side, side), 255, np.uint8)
    for y in range(0, side - 11, 13):
        for x in range(0, side - 4, 6):
            page[y:y + 11, x:x + 4] = 0
    return np.repeat(page[..., None], 3, axis=-1)


def test_a_page_of_thousands_of_marks_keeps_the_largest_few_in_bounded_time():
    """Before the cap: 13,090 marks, 21 s to find them and 30 s and 8.4 GB to chain them."""
    photo = _bars()
    start = time.perf_counter()
    marks = digit_lines.components(photo)
    found = digit_lines.lines(marks)
    assert len(marks) == digit_lines.MAX_MARKS and found == []  # the bars chain into rows of far more than 5
    assert time.perf_counter() - start < 10  # measured: 0.6 s
    photo[:400, :400] = 255  # a clearing, and the photo's largest marks: a number (two 20 x 40 bars) in it
    photo[100:140, 100:120] = photo[100:140, 130:150] = 0
    marks = digit_lines.components(photo)
    assert len(marks) == digit_lines.MAX_MARKS
    assert [b.tolist() for b in digit_lines.lines(marks)] == [[100.0, 100.0, 50.0, 40.0]]
    assert np.array_equal(marks, digit_lines.components(photo))  # the same marks every time


def test_chaining_many_marks_takes_bounded_memory():
    """`lines` of 3,000 marks: N x N matrices took 459 MB; blocks of rows take 12 MB."""
    rng = np.random.default_rng(0)
    marks = np.concatenate([rng.uniform(0, 1000, (3000, 2)), rng.uniform(8, 12, (3000, 1)),
                            rng.uniform(12, 20, (3000, 1))], axis=1)
    tracemalloc.start()
    try:
        found = digit_lines.lines(marks)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40e6, f"{peak / 1e6:.0f} MB"
    assert found and all(len(box) == 4 for box in found)


@pytest.mark.slow
def test_predict_reads_the_adversarial_page_in_bounded_memory_and_time(tmp_path):
    """`python -m svhn_jax.predict` on the 6 KB page of bars, its peak memory measured from a fresh
    parent (`os.wait4`: the child's own ru_maxrss; a parent of a few MB carries over almost nothing).
    Before the cap: 8.9 GB and 67 s."""
    Image.fromarray(_bars()).save(tmp_path / "bars.png", optimize=True)
    assert (tmp_path / "bars.png").stat().st_size < 8000
    wrapper = ("import os, subprocess, sys, time; start = time.time(); p = subprocess.Popen(sys.argv[1:]); "
               "_, status, usage = os.wait4(p.pid, 0); "
               "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, time.time() - start)")
    result = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "svhn_jax.predict", "--json",
                             str(tmp_path / "bars.png")], cwd=REPO, env=module_env(), capture_output=True,
                            text=True, timeout=300)
    answer, measured = result.stdout.splitlines()[-2:]
    status, peak_kb, seconds = measured.split()
    assert status == "0", result.stderr[-2000:]
    assert json.loads(answer)["number"] is None
    assert int(peak_kb) / 1024 < 1500, f"peak RSS {int(peak_kb) / 1024:.0f} MB"
    assert float(seconds) < 60, f"{float(seconds):.0f} s"
