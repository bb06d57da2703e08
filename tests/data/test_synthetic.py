"""The synthetic SVHN renderer: determinism, exact labels in digitStruct.mat, boxes, fitted statistics."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, needs_shared
from PIL import Image

from svhn_jax.data.svhn.digitstruct import read_digitstruct
from svhn_jax.data.synth import geometry as synth_geometry
from svhn_jax.data.synth import materials as synth_materials
from svhn_jax.data.synth import release as synthetic
from svhn_jax.data.synth import render as synth_render

REPO = Path(__file__).resolve().parents[2]
LABELS = SHARED / "data" / "svhn_train_labels.json"


def _chi2(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = counts.sum() * probs / probs.sum()
    return float(np.sum((counts - expected) ** 2 / expected))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path):
    a = synthetic.write_release(tmp_path / "a" / "train", 14, seed=7, workers=2, chunk=4)
    time.sleep(1.02 - time.time() % 1)  # a new wall-clock second: timestamps in a file would show
    b = synthetic.write_release(tmp_path / "b" / "train", 14, seed=7, workers=1)
    files_a, files_b = _files(tmp_path / "a" / "train"), _files(tmp_path / "b" / "train")
    assert sorted(files_a) == sorted([f"{i}.png" for i in range(1, 15)] + ["digitStruct.mat"])
    assert files_a == files_b
    assert a == b
    c = synthetic.write_release(tmp_path / "c" / "train", 14, seed=8, workers=1)
    assert files_a["1.png"] != _files(tmp_path / "c" / "train")["1.png"] and a != c


def test_digitstruct_round_trips_to_the_drawn_labels_and_boxes(tmp_path):
    folder = tmp_path / "test"
    entries = synthetic.write_release(folder, 25, seed=3, workers=1)
    assert read_digitstruct(folder / "digitStruct.mat") == entries
    for i, entry in enumerate(entries):
        image, boxes = synthetic.render_example(3, i)
        layout = synthetic.sample_layout(synthetic.example_rngs(3, i)[0])
        assert entry.name == f"{i + 1}.png"
        assert entry.boxes == boxes
        assert tuple(b.label for b in entry.boxes) == layout.labels
        with Image.open(folder / entry.name) as png:
            assert png.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(png), image)
        assert image.shape == (layout.height, layout.width, 3)


def test_boxes_lie_inside_the_images_left_to_right():
    for i in range(150):
        image, boxes = synthetic.render_example(11, i)
        h, w = image.shape[:2]
        for b in boxes:
            assert 1 <= b.label <= 10
            assert b.width >= 1 and b.height >= 1
            assert 0 <= b.left and b.left + b.width <= w and 0 <= b.top and b.top + b.height <= h
            assert float(b.left).is_integer() and float(b.height).is_integer()
        lefts = [b.left for b in boxes]
        assert lefts == sorted(lefts)  # left to right, as in SVHN


@pytest.mark.parametrize("fonts", synth_materials.FONT_SETS)
def test_digit_ink_stays_inside_its_box(fonts):
    for i in range(40):
        geometry, appearance = synthetic.example_rngs(21, i)
        layout = synthetic.sample_layout(geometry)
        boxes = np.c_[layout.boxes[:, :2], layout.boxes[:, :2] + layout.boxes[:, 2:]].astype(float)
        layer = Image.new("RGBA", (layout.width, layout.height), (0, 0, 0, 0))
        # "tiles": no drop shadow, the only thing drawn outside the ink; an outline adds 1 px.
        synth_render._digits(appearance, layer, layout.labels, boxes, float(layout.boxes[0, 3]), False, "tiles",
                          (200, 200, 200), (20, 20, 20), fonts)
        alpha = np.asarray(layer)[..., 3]
        inside = np.zeros_like(alpha, bool)
        for x0, y0, x1, y1 in boxes.astype(int):
            assert alpha[y0:y1, x0:x1].max() > 128  # each box holds its digit
            inside[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = True
        assert alpha[~inside].max(initial=0) == 0


def test_the_open_font_set_adds_every_packaged_face_and_leaves_matplotlib_renders_alone():
    files, p = synth_materials.font_set("open")
    assert len(files) == len(synth_materials.FONTS) + len(synth_materials.OPEN_FONTS) == 49
    assert files[:len(synth_materials.FONTS)] == synth_materials.font_set("matplotlib")[0]
    assert p.sum() == pytest.approx(1.0) and (p > 0).all()
    for font in files:
        for digit in "0123456789":
            ink = np.asarray(synth_materials.glyph(font, digit))
            assert ink.max() == 255 and ink.shape[0] >= 30, (font, digit)  # every face draws every digit
    with pytest.raises(ValueError, match="unknown font set 'comic'"):
        synth_materials.font_set("comic")
    changed = 0
    for i in range(20):
        image, boxes = synthetic.render_example(4, i)
        same, _ = synthetic.render_example(4, i, "matplotlib")
        other, other_boxes = synthetic.render_example(4, i, "open")
        assert np.array_equal(image, same) and other_boxes == boxes  # the same number, place and warp
        changed += not np.array_equal(image, other)
    assert changed >= 5  # about half the numbers drawn in an open face (by weight: 22.8 of 46.2)


def test_layout_distributions_match_the_fitted_constants():
    layouts = [synthetic.sample_layout(synthetic.example_rngs(5, i)[0]) for i in range(4000)]
    lengths = np.bincount([len(l.labels) for l in layouts], minlength=6)[1:]
    # Five digits are too rare (p=0.0003) for a chi-square cell of their own: merge them into four.
    merged_counts = np.r_[lengths[:3], lengths[3:].sum()]
    merged_p = np.r_[synth_geometry.LENGTH_P[:3], sum(synth_geometry.LENGTH_P[3:])]
    assert _chi2(merged_counts, merged_p) < 16.27  # chi-square, 3 dof, p = 0.001
    first = np.bincount([l.labels[0] % 10 for l in layouts], minlength=10)
    later = np.bincount([d % 10 for l in layouts for d in l.labels[1:]], minlength=10)
    assert _chi2(first[1:], np.asarray(synth_geometry.FIRST_DIGIT_P[1:])) < 27.88  # 9 dof (0 is too rare first)
    assert _chi2(later, np.asarray(synth_geometry.LATER_DIGIT_P)) < 27.88  # 9 dof, p = 0.001
    heights = np.array([l.height for l in layouts])
    assert abs(np.median(heights) / synth_geometry.IMAGE_HEIGHT_Q[5] - 1) < 0.08
    digit_h = np.array([l.boxes[0, 3] / l.height for l in layouts])
    assert abs(np.median(digit_h) - synth_geometry.DIGIT_HEIGHT_FRAC_Q[5]) < 0.03
    aspects = {d: [] for d in range(10)}
    for l in layouts:
        for lab, (_, _, bw, bh) in zip(l.labels, l.boxes):
            aspects[lab % 10].append(bw / bh)
    for d in range(10):
        assert abs(np.median(aspects[d]) - synth_geometry.BOX_ASPECT_Q[d][5]) < 0.04, d
    ratios = np.array([l.width / l.height for l in layouts if len(l.labels) == 2])
    assert abs(np.median(ratios) - synth_geometry.IMAGE_ASPECT_Q[1][5]) < 0.08
    for l in layouts:
        assert (l.boxes[:, :2] >= 0).all() and (l.boxes[:, 0] + l.boxes[:, 2] <= l.width).all()
        assert (l.boxes[:, 1] + l.boxes[:, 3] <= l.height).all()


@needs_shared("data", "svhn_train_labels.json")
def test_tables_are_the_ones_the_fitting_script_writes():
    spec = importlib.util.spec_from_file_location("fit_synth_stats", REPO / "scripts" / "fit_synth_stats.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    constants = fit.fit(json.loads(LABELS.read_text()))
    assert json.loads(json.dumps(constants)) == synth_geometry.STATS


def _neighbour_geometry(box_lists) -> dict[str, np.ndarray]:
    """Joint statistics of neighbouring digit boxes (x0, y0, x1, y1) within each image."""
    overlap, step, height = [], [], []
    for boxes in box_lists:
        b = np.asarray(boxes, float)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        for i in range(1, len(b)):
            overlap.append((b[i - 1, 2] - b[i, 0]) / min(w[i - 1], w[i]))  # > 0: overlap, < 0: gap
            step.append((b[i, 1] - b[i - 1, 1]) / h.mean())
            height.append(h[i] / h[i - 1])
    return {k: np.array(v) for k, v in (("overlap", overlap), ("step", step), ("height", height))}


@pytest.mark.slow  # compiles or renders for several seconds
@needs_shared("data", "svhn_train_labels.json")
def test_rendered_boxes_have_the_real_labels_joint_geometry():
    real = [[(b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in r["boxes"]]
            for r in json.loads(LABELS.read_text()) if 2 <= len(r["boxes"]) <= 5]
    rendered = []
    for i in range(800):
        _, boxes = synthetic.render_example(17, i)  # after perspective warps, as written to digitStruct
        rendered.append([(b.left, b.top, b.left + b.width, b.top + b.height) for b in boxes])
    r, s = _neighbour_geometry(real), _neighbour_geometry([b for b in rendered if len(b) > 1])
    assert len(s["overlap"]) > 700
    # Buried digits: real 0.9 % / 3.7 % of neighbours overlap by > 50 % / > 35 % of the narrower box.
    for threshold, tolerance in ((0.5, 0.015), (0.35, 0.03)):
        assert abs(np.mean(s["overlap"] > threshold) - np.mean(r["overlap"] > threshold)) < tolerance, threshold
    q = (0.1, 0.25, 0.5, 0.75, 0.9)
    np.testing.assert_allclose(np.quantile(s["overlap"], q), np.quantile(r["overlap"], q), atol=0.06)
    np.testing.assert_allclose(np.quantile(s["step"], q), np.quantile(r["step"], q), atol=0.06)
    np.testing.assert_allclose(np.quantile(s["height"], q), np.quantile(r["height"], q), atol=0.1)


def test_every_labelled_digit_is_visible():
    """Each box holds contrasting ink, and none is mostly covered by its neighbours' boxes."""
    contrast, covered = [], []
    for i in range(300):
        image, boxes = synthetic.render_example(9, i)
        lum = image.astype(float) @ np.array([0.299, 0.587, 0.114])
        xyxy = [(int(b.left), int(b.top), int(b.left + b.width), int(b.top + b.height)) for b in boxes]
        for j, (x0, y0, x1, y1) in enumerate(xyxy):
            pixels = lum[y0:y1, x0:x1]
            contrast.append(np.percentile(pixels, 90) - np.percentile(pixels, 10))
            cover = np.zeros(x1 - x0, bool)
            for k, (a0, _, a1, _) in enumerate(xyxy):
                if k != j:
                    cover[max(a0 - x0, 0):max(min(a1, x1) - x0, 0)] = True
            covered.append(cover.mean())
    assert np.mean(np.array(contrast) >= 15) >= 0.99
    assert max(covered) <= 0.8 and np.mean(np.array(covered) > 0.6) < 0.01


@pytest.mark.slow
def test_cli_writes_a_release_and_refuses_to_overwrite(tmp_path):
    cmd = [sys.executable, "-m", "svhn_jax.synth", f"--out={tmp_path}", "--split=extra", "--num=3",
           "--seed=1", "--workers=1"]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "extra").iterdir()) == ["1.png", "2.png", "3.png", "digitStruct.mat"]
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert again.returncode != 0
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
    bad = subprocess.run(cmd[:3] + ["--num=0"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert not any(p.name.startswith("extra.tmp") for p in tmp_path.iterdir())


def test_synthetic_splits_are_rendered_releases_ingested_like_real_svhn(tmp_path):
    from configs import test as test_config
    from svhn_jax.data import paths, sources, store

    c = test_config.get_config()
    c.data_dir, c.num_synthetic_train, c.num_synthetic_test = str(tmp_path), 30, 12
    (train,), test = sources.ensure_splits(c)
    for split, path, num in (("train", train, 30), ("test", test, 12)):
        entries = read_digitstruct(tmp_path / "synthetic" / "raw" / split / "digitStruct.mat")
        data = store.read_split(path)
        assert data.images.shape == (num, 32, 32, 1) and data.attrs["recipe"] == "seed32_grey"
        assert list(data.filenames) == [e.name for e in entries]
        assert store.decode_labels(data.lengths, data.digits) == [
            "".join(str(b.label % 10) for b in e.boxes) for e in entries]
    # The raw release is exactly what the CLI writes for the split's seed.
    cli = synthetic.write_release(tmp_path / "cli" / "test", 12, seed=paths.split_seed("test"), workers=1)
    assert cli == entries
    assert _files(tmp_path / "cli" / "test") == _files(tmp_path / "synthetic" / "raw" / "test")
    # Asking for another size remakes the split instead of silently reusing the stale file.
    c.num_synthetic_test = 7
    _, test = sources.ensure_splits(c)
    assert len(store.read_split(test).images) == 7
    assert store.read_split(test).attrs["source"] == f"synthetic(renderer=2, seed={paths.split_seed('test')}, num=7)"
    # The open font set is another dataset folder: both are kept, each remade only when its own is stale.
    c.synthetic_fonts = "open"
    _, open_test = sources.ensure_splits(c)
    assert open_test == tmp_path / "synthetic_open" / "seed32_grey" / "test.h5"
    assert store.read_split(open_test).attrs["source"] == (
        f"synthetic(renderer=2, seed={paths.split_seed('test')}, num=7, fonts=open)")
    cli = synthetic.write_release(tmp_path / "cli_open" / "test", 7, seed=paths.split_seed("test"), workers=1,
                                  fonts="open")
    assert _files(tmp_path / "cli_open" / "test") == _files(tmp_path / "synthetic_open" / "raw" / "test")
    assert _files(tmp_path / "cli_open" / "test") != _files(tmp_path / "synthetic" / "raw" / "test")
    assert store.read_split(test).attrs["source"].endswith("num=7)")  # the matplotlib split untouched
