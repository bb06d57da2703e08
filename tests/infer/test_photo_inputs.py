"""Users' inputs that are not what they seem (`infer.photos`): labels and boxes files that are FIFOs,
devices, huge or BOM-prefixed, and photos too small to read, through predict and score_photos."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_module
from PIL import Image

from svhn_jax.infer import photos


@pytest.fixture
def no_hang():
    """Fails a test whose call blocks (reading a FIFO without a writer) instead of hanging the suite."""
    def alarm(signum, frame):
        raise TimeoutError("blocked for 10 s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _one_line(result: subprocess.CompletedProcess) -> str:
    """The program's only stderr line, checked to be no traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


# ----------------------------------------------------------------------------- labels and boxes files

def test_labels_are_read_only_from_a_regular_file_of_bounded_size(tmp_path, no_hang):
    os.mkfifo(tmp_path / "labels.csv")
    big = tmp_path / "big.csv"
    with open(big, "wb") as f:  # sparse: no disk used
        f.truncate(photos.MAX_LABELS_BYTES + 1)
    cases = [(tmp_path / "labels.csv", "not a regular file (FIFO)"),
             (Path("/dev/zero"), "not a regular file (character device)"),
             (tmp_path, "is a folder"),
             (tmp_path / "absent.csv", "no such file"),
             (big, f"too large ({photos.MAX_LABELS_BYTES + 1:,} bytes; a labels file is read up to "
                   f"{photos.MAX_LABELS_BYTES:,})")]
    for path, why in cases:
        with pytest.raises(ValueError) as e:
            photos.read_labels(path)
        assert str(e.value) == f"{path}: {why}"


def test_labels_with_a_byte_order_mark_are_read(tmp_path):
    """Spreadsheets save "CSV UTF-8" with a BOM: before, its header was read as a photo "\\ufefffile"."""
    (tmp_path / "labels.csv").write_bytes("file,number,x,y,w,h\na.png,12,1,2,3,4\nb.png,none\n".encode("utf-8-sig"))
    assert [(r["file"], r["number"], r["box"]) for r in photos.read_labels(tmp_path / "labels.csv")] == [
        ("a.png", "12", (1, 2, 3, 4)), ("b.png", "", None)]
    (tmp_path / "labels.json").write_bytes('[{"file": "a.png", "number": 7}]'.encode("utf-8-sig"))
    assert [(r["file"], r["number"]) for r in photos.read_labels(tmp_path / "labels.json")] == [("a.png", "7")]


def test_labels_that_are_not_utf8_or_not_json_name_the_file(tmp_path):
    (tmp_path / "latin1.csv").write_bytes("caf\xe9.png,12\n".encode("latin-1"))
    (tmp_path / "broken.json").write_text('[{"file": ')
    with pytest.raises(ValueError, match=r"latin1.csv: not UTF-8 text \(invalid continuation byte at byte 3\)$"):
        photos.read_labels(tmp_path / "latin1.csv")
    with pytest.raises(ValueError, match=r"broken.json: not valid JSON \(Expecting value: line 1 column 11"):
        photos.read_labels(tmp_path / "broken.json")


@pytest.mark.slow
def test_predict_and_score_photos_refuse_a_fifo_or_device_for_labels_in_one_line(tmp_path):
    """Before: `--boxes=FIFO` and `--labels=FIFO` waited for a writer for ever; /dev/zero read until killed."""
    fifo = tmp_path / "boxes.csv"
    os.mkfifo(fifo)
    photo = str(REPO / "samples" / "svhn_train_2.png")
    for path, kind in ((fifo, "FIFO"), ("/dev/zero", "character device")):
        boxes = run_module("svhn_jax.predict", f"--boxes={path}", photo, timeout=60)
        assert boxes.returncode == 2 and boxes.stdout == ""
        assert _one_line(boxes) == f"error: {path}: not a regular file ({kind})"
        labels = run_module("svhn_jax.score_photos", f"--labels={path}", str(REPO / "samples"), timeout=60)
        assert labels.returncode == 1 and labels.stdout == ""
        assert _one_line(labels) == f"error: cannot read the labels: {path}: not a regular file ({kind})"


# ----------------------------------------------------------------------------- photos too small to read

@pytest.mark.parametrize("size", [(1, 1), (2000, 1), (1, 2000), (2, 2)])
def test_a_photo_under_three_pixels_on_a_side_is_one_line(size, tmp_path):
    Image.new("RGB", size, (120, 90, 60)).save(tmp_path / "tiny.png")
    with pytest.raises(photos.ImageError) as e:
        photos.load_photo(tmp_path / "tiny.png")
    assert str(e.value) == (f"too small to read ({size[0]}x{size[1]} pixels; at least "
                            f"{photos.MIN_SIDE} on each side)")
    with pytest.raises(photos.ImageError, match="too small to read"):
        photos.load_image(tmp_path / "tiny.png")
    Image.new("RGB", (3, 3)).save(tmp_path / "three.png")
    assert photos.load_image(tmp_path / "three.png").shape == (3, 3, 3)


@pytest.mark.slow
def test_predict_and_score_photos_answer_past_a_tiny_photo(tmp_path):
    """Before: predict printed OpenCV's two-line error, and score_photos died with a traceback and
    lost the whole run."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(REPO / "samples" / "svhn_train_2.png", folder / "a.png")
    Image.new("RGB", (2000, 1), (200, 200, 200)).save(folder / "strip.png")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    predicted = run_module("svhn_jax.predict", "--json", str(folder))
    assert predicted.returncode == 1 and "Traceback" not in predicted.stderr, predicted.stderr[-3000:]
    answers = {Path(a["file"]).name: a for a in map(json.loads, predicted.stdout.splitlines())}
    assert answers["a.png"]["number"] == "23"
    assert answers["dot.png"] == {"file": str(folder / "dot.png"),
                                  "error": "too small to read (1x1 pixels; at least 3 on each side)"}
    assert answers["strip.png"]["error"] == "too small to read (2000x1 pixels; at least 3 on each side)"
    text = run_module("svhn_jax.predict", str(folder / "dot.png"))
    assert text.returncode == 1 and text.stdout == ""
    assert _one_line(text) == f"{folder / 'dot.png'}: too small to read (1x1 pixels; at least 3 on each side)"

    labels = tmp_path / "labels.csv"
    labels.write_text("file,number\na.png,23\nstrip.png,5\ndot.png,none\n")
    scored = run_module("svhn_jax.score_photos", f"--labels={labels}", f"--json_out={tmp_path / 's.json'}",
                        str(folder))
    assert scored.returncode == 1 and "Traceback" not in scored.stderr, scored.stderr[-3000:]
    assert scored.stderr.splitlines() == [
        f"{folder / 'strip.png'}: too small to read (2000x1 pixels; at least 3 on each side)",
        f"{folder / 'dot.png'}: too small to read (1x1 pixels; at least 3 on each side)"]
    assert "no_box: 1/1 right" in scored.stdout
    assert [r["file"] for r in json.loads((tmp_path / "s.json").read_text())["not_read"]] == ["strip.png", "dot.png"]


def test_a_photo_of_three_pixels_on_its_short_side_still_decodes(tmp_path):
    """`load_photo` is the gate; 3 pixels on the short side (the fewest it passes) decode as they are."""
    Image.fromarray(np.zeros((3, 5, 3), np.uint8)).save(tmp_path / "small.png")
    image, scale = photos.load_photo(tmp_path / "small.png")
    assert image.shape == (3, 5, 3) and scale == 1.0
