"""Finding the number in a whole photo: the localiser's maths, its synthetic scenes, its training, the
shipped weights on held-out scenes, and predict / score_photos without a box."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, module_env, run_module
from PIL import Image

from svhn_jax import pretrained
from svhn_jax.cli import score_photos
from svhn_jax.data.preprocess import letterbox
from svhn_jax.data.synth import scene as synth_scene
from svhn_jax.infer import whole_photo
from svhn_jax.infer.localiser import Localiser
from svhn_jax.models.decoding import CELL, GRID, SIZE, iou
from svhn_jax.models.decoding import decode_boxes as decode
from svhn_jax.tasks.localiser import loss, targets

HELD_OUT_SEED = 987_654  # never a training seed (configs/localiser.py renders seeds 1 and 2)


def _outputs_that_say(boxes: np.ndarray) -> dict[str, np.ndarray]:
    """The localiser outputs whose softmax is exactly the targets of `boxes` and whose box terms are exact."""
    probs, reg = (np.asarray(a) for a in targets(np.asarray(boxes, np.float32)))
    logits = np.log(probs + 1e-30)
    cells = np.concatenate([logits[:, :-1].reshape(-1, GRID, GRID, 1), reg], -1)
    return {"cells": cells, "none": logits[:, -1]}


def test_decode_returns_the_box_the_targets_describe():
    boxes = np.array([[30.0, 40.0, 50.0, 20.0], [100.0, 2.0, 12.0, 30.0], [np.nan] * 4], np.float32)
    found, confidence, p_none = decode(_outputs_that_say(boxes), k=2)
    np.testing.assert_allclose(found[:2, 0], boxes[:2], atol=1e-3)
    assert p_none[:2] == pytest.approx([0.0, 0.0], abs=1e-6) and p_none[2] == pytest.approx(1.0)
    # The confidence is the target's mass in the 3 x 3 cells around the peak.
    probs = np.asarray(targets(boxes)[0])[0, :-1].reshape(GRID, GRID)
    i, j = np.unravel_index(np.argmax(probs), probs.shape)
    assert confidence[0, 0] == pytest.approx(probs[i - 1:i + 2, j - 1:j + 2].sum(), rel=1e-5)


def test_targets_centre_the_heat_on_the_box_and_sum_to_one():
    probs, reg = targets(np.array([[62.0, 20.0, 8.0, 16.0]], np.float32))
    probs = np.asarray(probs)
    assert probs.sum() == pytest.approx(1.0) and probs[0, -1] == 0.0
    i, j = divmod(int(np.argmax(probs[0, :-1])), GRID)
    assert (j, i) == (66 // CELL, 28 // CELL)  # the centre (66, 28) lies in that cell
    assert np.asarray(reg)[0, i, j, 2:] == pytest.approx(np.log([8 / SIZE, 16 / SIZE]))


def test_loss_is_lowest_for_the_true_box():
    boxes = np.array([[30.0, 40.0, 50.0, 20.0]], np.float32)
    right = float(loss(_outputs_that_say(boxes), boxes)[0])
    wrong = float(loss(_outputs_that_say(boxes + [40, 30, 0, 0]), boxes)[0])
    none = float(loss(_outputs_that_say(np.full((1, 4), np.nan, np.float32)), boxes)[0])
    assert right < wrong and right < none


def test_iou_exact_values():
    assert iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0
    assert iou([0, 0, 10, 10], [np.nan] * 4) == 0.0


def test_letterbox_keeps_the_aspect_and_maps_points():
    photo = np.zeros((100, 200, 3), np.uint8)
    photo[40:60, 100:120] = 255
    canvas, scale, (left, top) = letterbox(photo, SIZE)
    assert canvas.shape == (SIZE, SIZE, 3) and scale == SIZE / 200 and (left, top) == (0, 32)
    y, x = np.argwhere(canvas[..., 0] > 200).mean(0)
    assert (x, y) == pytest.approx((left + 110 * scale, top + 50 * scale), abs=1.0)


def test_scenes_are_a_function_of_seed_and_index_with_boxes_inside():
    scenes = [synth_scene.render_scene(HELD_OUT_SEED, i) for i in range(40)]
    again = synth_scene.render_scene(HELD_OUT_SEED, 7)
    assert scenes[7][0].tobytes() == again[0].tobytes() and np.array_equal(scenes[7][1], again[1], equal_nan=True)
    boxes = np.stack([b for _, b in scenes])
    has = ~np.isnan(boxes[:, 0])
    assert 0 < (~has).sum() < 20  # some scenes hold no number (15 % expected)
    assert (boxes[has, :2] >= -0.5).all() and (boxes[has, :2] + boxes[has, 2:] <= SIZE + 0.5).all()
    assert (boxes[has, 2:] >= 1).all()


def test_house_fronts_are_drawn_clear_of_the_number_and_only_when_asked():
    from svhn_jax.core import config as core_config
    from svhn_jax.data import paths
    changed = 0
    for i in range(40):
        plain, box = synth_scene.scene_photo(HELD_OUT_SEED, i)
        front, same_box = synth_scene.scene_photo(HELD_OUT_SEED, i, facades=1.0)
        assert np.array_equal(box, same_box) if box is not None else same_box is None
        assert front.shape == plain.shape, i  # the same draws: the same photo size, tilt and all
        changed += not np.array_equal(front, plain)
        if box is not None and not np.array_equal(front, plain):  # the number and its margin are untouched
            x, y, w, h = np.round(box).astype(int)
            assert np.array_equal(front[y:y + h, x:x + w], plain[y:y + h, x:x + w]), i
    assert changed >= 15  # wall and no-number scenes (65 % expected), drawn as house fronts
    c = core_config.localiser()
    assert paths.dataset_folder(c) == "scenes"
    c.scene_facades = 0.5
    assert paths.dataset_folder(c) == "scenes_facades50"  # kept apart from the plain scenes


def test_stacked_rows_cut_at_the_gaps_and_lay_the_rows_side_by_side():
    photo = np.zeros((200, 100, 3), np.uint8)
    for top, value in ((40, 60), (85, 150), (130, 240)):  # three 30 x 30 "digits", 15-pixel gaps
        photo[top:top + 30, 35:65] = value
    box = np.array([30.0, 38.0, 40.0, 125.0])
    cuts = whole_photo.row_cuts(photo[38:163, 30:70], 3) + 38
    assert 70 <= cuts[1] < 85 and 115 <= cuts[2] < 130  # inside the gaps, not through a digit
    strip, (x, y, w, h) = whole_photo.stacked_rows(photo, box, 3)
    assert w > 2.5 * h  # the rows side by side
    row = strip[y + h // 2, x:x + w, 0].astype(int)
    thirds = [int(row[k * w // 3 + w // 6]) for k in range(3)]
    assert thirds == [60, 150, 240]  # left to right = top to bottom


def test_closer_looks_are_overlapping_windows_that_cover_the_photo():
    windows = whole_photo.tiles(1000, 600)  # side 0.45 x 1000 = 450
    assert [tuple(w) for w in windows] == [(x, y, 450, 450) for y in (0, 150) for x in (0, 275, 550)]
    covered = np.zeros((600, 1000), bool)
    for x, y, w, h in np.asarray(windows, int):
        covered[y:y + h, x:x + w] = True
    assert covered.all()
    assert [tuple(w) for w in whole_photo.tiles(100, 60)] == [(x, y, 45, 45) for y in (0, 15) for x in (0, 27.5, 55)]
    assert whole_photo.tiles(70, 40) == []  # a window would be under MIN_TILE_SIDE pixels: the whole look will do
    # A box a window cut (it reaches the window's edge inside the photo) is a part of a number; the
    # photo's own edge cuts nothing.
    window = np.array([275.0, 0.0, 450.0, 450.0])
    assert whole_photo._touches_inner_edge(np.array([280.0, 100, 40, 30]), window, 1000, 600)
    assert whole_photo._touches_inner_edge(np.array([500.0, 430, 40, 18]), window, 1000, 600)
    assert not whole_photo._touches_inner_edge(np.array([500.0, 2, 40, 30]), window, 1000, 600)
    assert not whole_photo._touches_inner_edge(np.array([500.0, 100, 40, 30]), window, 1000, 600)


def _small_number_on_a_facade(index: int) -> tuple[np.ndarray, str, np.ndarray]:
    """A rendered number 45 px wide (4 % of the width) beside a door on a 1200 x 900 facade: (photo,
    label, the pasted crop's box)."""
    from svhn_jax.data.synth.release import render_example
    image, boxes = render_example(21, index)
    x0, y0 = min(b.left for b in boxes), min(b.top for b in boxes)
    x1, y1 = max(b.left + b.width for b in boxes), max(b.top + b.height for b in boxes)
    w, h = x1 - x0, y1 - y0
    crop = Image.fromarray(image).crop((max(0, x0 - 0.3 * w), max(0, y0 - 0.3 * h), x1 + 0.3 * w, y1 + 0.3 * h))
    crop = crop.resize((45, max(8, round(crop.height * 45 / crop.width))))
    wall = Image.new("RGB", (1200, 900), (176, 168, 150))
    wall.paste((70, 50, 40), (450, 250, 750, 900))  # a door
    for left in (100, 900):
        wall.paste((200, 220, 235), (left, 200, left + 200, 400))  # windows
    wall.paste(crop, (820, 520))
    return np.asarray(wall), "".join(str(b.label % 10) for b in boxes), np.array([820, 520, *crop.size], float)


def test_a_small_number_on_a_facade_is_found_by_a_closer_look():
    """The whole photo at the localiser's 128 pixels shows these numbers 5 pixels wide: it finds none of
    them (it says "no number" or boxes a window); the closer looks find and read them."""
    from svhn_jax.infer.reader import Reader
    reader, loc = Reader.load(), Localiser.load()
    for index in (1, 3, 8, 11):  # 339, 26, 217, 793 (all 12 of indices 0-11 are read right: measured)
        photo, label, where = _small_number_on_a_facade(index)
        found, _, p_none = whole_photo.candidates(loc, photo)
        assert p_none > whole_photo.NO_NUMBER or max(iou(b, where) for b in found) < 0.1
        result = whole_photo.read_photo(reader, loc, photo)
        assert result["reading"] == label and iou(np.array(result["box"], float), where) > 0.3, result


# ------------------------------------------------------------------ training (resumable, bit-exact)

def _localiser_config(tiny_config, **overrides):
    from configs import localiser as localiser_config
    c = localiser_config.get_config()
    c.data_dir = tiny_config().data_dir
    tiny = dict(num_scenes_train=128, num_scenes_test=32, batch_size=16, num_train_steps=8, log_every_steps=4,
                eval_every_steps=4, checkpoint_every_steps=4)
    for k, v in {**tiny, **overrides}.items():
        setattr(c, k, v)
    return c


@pytest.mark.slow
def test_localiser_training_resumes_to_the_same_parameters(tiny_config, tmp_path):
    from svhn_jax import trainer
    straight = trainer.train_and_evaluate(_localiser_config(tiny_config), tmp_path / "straight")
    trainer.train_and_evaluate(_localiser_config(tiny_config, num_train_steps=4), tmp_path / "resumed")
    resumed = trainer.train_and_evaluate(_localiser_config(tiny_config), tmp_path / "resumed")
    assert resumed["params_sha256"] == straight["params_sha256"] and resumed["step"] == 8
    assert 0.0 <= straight["eval_box_found"] <= 1.0 and straight["num_train_examples"] == 128


# ------------------------------------------------------------------ the shipped localiser

def test_shipped_localiser_is_recorded_and_finds_held_out_synthetic_numbers():
    from svhn_jax.core.workdir import tree_sha256
    info = json.loads((pretrained.folder("localiser") / "info.json").read_text())
    config, _, variables = pretrained.load("localiser")
    assert tree_sha256(variables["params"]) == info["params_sha256"] and config.model == "localiser"
    assert "configs/localiser.py" in info["command"]
    loc = Localiser.load()
    scenes = [synth_scene.render_scene(HELD_OUT_SEED, i) for i in range(240)]
    with_number = [(im, b) for im, b in scenes if not np.isnan(b[0])]
    best = np.stack([whole_photo.candidates(loc, im, k=1)[0][0] for im, _ in with_number])  # found, then refined
    overlap = iou(best, np.stack([b for _, b in with_number]))
    # Measured: 88.7 % of these 212 (docs/localiser.md); the goal is 95 %, not reached yet.
    assert np.mean(overlap >= 0.5) >= 0.85, f"box found in {np.mean(overlap >= 0.5):.1%} of {len(with_number)}"


def _predict_json(*args: str) -> list[dict]:
    result = run_module("svhn_jax.predict", "--json", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.slow
def test_photo_without_a_number_answers_null_with_a_reason(tmp_path):
    wall = Image.new("RGB", (640, 480), (182, 160, 140))
    wall.paste((120, 90, 70), (0, 380, 640, 480))  # a skirting board: structure, no digits
    wall.save(tmp_path / "wall.png")
    [a] = _predict_json(str(tmp_path / "wall.png"))
    assert a["number"] is None and "no house number" in a["reason"] and a["box"] is None


@pytest.mark.slow
def test_annotate_draws_the_box_and_huge_photos_are_read_in_bounded_memory(tmp_path):
    sample = Image.open(REPO / "samples" / "svhn_train_2.png").convert("RGB")  # "23", 2x bigger in a huge wall
    huge = Image.new("RGB", (4000, 3000), (150, 140, 120))
    huge.paste(sample.resize((sample.width * 2, sample.height * 2)), (2500, 1200))
    huge.save(tmp_path / "huge.jpg", quality=90)
    # VmHWM: this process's own peak RSS (ru_maxrss would start at the pytest process's peak: Linux
    # carries it over fork and exec).
    code = ("import sys; from svhn_jax.cli import predict; "
            "peak_kb = lambda: int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]); "
            "from absl import app; predict.define_flags(); "
            "sys.argv = ['predict', '--json', '--annotate=" + str(tmp_path / "drawn") + "', '" +
            str(tmp_path / "huge.jpg") + "']; "
            "app.run(lambda argv: print(predict.main(argv), peak_kb()))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=module_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    answer_line, status_and_rss = result.stdout.splitlines()[-2:]
    a = json.loads(answer_line)
    peak_mb = int(status_and_rss.split()[1]) / 1024
    assert peak_mb < 1500, f"peak RSS {peak_mb:.0f} MB"  # the photo alone is 36 MB as RGB
    drawn = Image.open(tmp_path / "drawn" / "huge.jpg.annotated.png")
    assert drawn.format == "PNG" and max(drawn.size) == 1600  # scaled to 1600 px
    x, y, w, h = (round(v * 1600 / 4000) for v in a["box"])
    edge = np.asarray(drawn.convert("RGB"))[y + h // 2, max(0, x - 3):x + 4]
    assert ((edge[:, 0] > 200) & (edge[:, 1] < 60)).any()  # the red box edge crosses that row


# ------------------------------------------------------------------ scoring a labelled folder

def test_score_counts_exactly_on_a_hand_made_set():
    labels = [{"file": "a", "number": "12", "box": (0, 0, 10, 10)}, {"file": "b", "number": "7", "box": (0, 0, 10, 10)},
              {"file": "c", "number": "", "box": None}, {"file": "d", "number": "345", "box": None}]
    answers = [{"number": "12", "reading": "12", "confidence": 0.95, "box": [5, 0, 10, 10]},   # right, IoU 1/3
               {"number": "1", "reading": "1", "confidence": 0.92, "box": [0, 0, 10, 10]},    # wrong, IoU 1
               {"number": None, "reading": "", "confidence": 0.0, "box": None, "reason": "none"},  # right
               {"number": "345", "reading": "345", "confidence": 0.5, "box": [1, 1, 2, 2]}]   # right
    s = score_photos.score(answers, labels, 0.9)
    assert s == {"num": 4, "right": 3, "accuracy": 0.75, "confident": 2, "confident_right": 1,
                 "confident_precision": 0.5, "confident_coverage": 0.5, "boxes": 2, "box_found": 1,
                 "mean_iou": pytest.approx((1 / 3 + 1) / 2)}
    assert score_photos.summary_line("no_box", s, 0.9) == (
        "no_box: 3/4 right (75.0 %); box found (IoU >= 0.5) 1/2, mean IoU 0.67; confidence >= 0.9: 1/2 right "
        "(coverage 50 %)")


@pytest.mark.slow
def test_score_photos_prints_what_predict_answers(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,number,x,y,w,h\nsvhn_train_1.png,19,246,77,173,223\nsynthetic_1.png,none\n")
    result = run_module("svhn_jax.score_photos", f"--labels={labels}", f"--json_out={tmp_path / 's.json'}",
                        str(REPO / "samples"))
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads((tmp_path / "s.json").read_text())
    answers = {a["file"]: a for a in _predict_json(str(REPO / "samples" / "svhn_train_1.png"),
                                                   str(REPO / "samples" / "synthetic_1.png"))}
    for a in scores["answers"]["no_box"]:  # the same answer as predict gives, file for file
        b = answers[str(REPO / "samples" / a["file"])]
        assert (a["reading"], a["box"]) == (b["reading"], b["box"])
        assert a["confidence"] == pytest.approx(b["confidence"])
    truth = {"svhn_train_1.png": "19", "synthetic_1.png": ""}
    for a in scores["answers"]["no_box"]:  # each answer beside its label, and whether it counts as right
        assert a["truth"] == truth[a["file"]]
        assert a["right"] == score_photos.is_right(a, a["truth"])
    summary = scores["summary"]["no_box"]
    assert summary["right"] == sum(a["right"] for a in scores["answers"]["no_box"])
    right = int(answers[str(REPO / "samples" / "svhn_train_1.png")]["reading"] == "19") + int(
        answers[str(REPO / "samples" / "synthetic_1.png")]["number"] is None)
    assert summary["num"] == 2 and summary["right"] == right and summary["boxes"] == 1
    assert f"no_box: {right}/2 right" in result.stdout
