"""Multi-digit MNIST: composer, digit pools, prepare CLI and ensure_splits, on small .npz files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, needs_shared, run_module
from PIL import Image

from svhn_jax.data import multi_mnist, sources, store
from svhn_jax.data.labels import PAD

MNIST_5K = SHARED / "data" / "mnist_5k.npz"


def _digits(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n distinct 28x28 'digits': a random ink rectangle each (value 1-255), on a black border."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        t, l = rng.integers(2, 8, 2)
        b, r = rng.integers(18, 27, 2)
        images[i, t:b, l:r] = rng.integers(1, 256, (b - t, r - l))
    return images, np.arange(n) % 10


@pytest.fixture
def npz(tmp_path) -> Path:
    images, labels = _digits()
    path = tmp_path / "digits.npz"
    np.savez(path, images=images, labels=labels.astype(np.uint8))
    return path


def test_compose_is_deterministic_for_a_seed():
    images, labels = _digits()
    a = multi_mnist.compose(images, labels, 40, seed=7)
    b = multi_mnist.compose(images, labels, 40, seed=7)
    c = multi_mnist.compose(images, labels, 40, seed=8)
    for name in ("images", "lengths", "digits", "boxes", "sources"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.images, c.images)
    chunked = list(multi_mnist.iter_compose(images, labels, 40, seed=7, chunk=16))
    assert [len(p.lengths) for p in chunked] == [16, 16, 8]
    np.testing.assert_array_equal(np.concatenate([p.images for p in chunked]), a.images)


def test_labels_and_lengths_match_the_drawn_digits():
    images, labels = _digits()
    c = multi_mnist.compose(images, labels, 300, seed=1)
    assert c.images.shape == (300, 64, 64, 1) and c.images.dtype == np.uint8
    assert set(np.unique(c.lengths)) == {1, 2, 3, 4, 5}
    for n, row, src in zip(c.lengths, c.digits, c.sources):
        np.testing.assert_array_equal(row[:n], labels[src[:n]])
        assert (row[n:] == PAD).all() and (src[n:] == -1).all() and (src[:n] >= 0).all()


def test_digits_stay_inside_the_image_and_boxes_hold_all_ink():
    images, labels = _digits()
    c = multi_mnist.compose(images, labels, 300, seed=2)
    for img, n, boxes in zip(c.images[..., 0], c.lengths, c.boxes):
        covered = np.zeros_like(img, bool)
        for x, y, w, h in boxes[:n]:
            assert 0 <= x and x + w <= 64 and 0 <= y and y + h <= 64 and w >= 1 and h >= 4
            assert img[y:y + h, x:x + w].max() > 0
            covered[y:y + h, x:x + w] = True
        assert not img[~covered].any()
        assert (boxes[n:] == 0).all()
    xs = [b[:n, 0] for b, n in zip(c.boxes, c.lengths)]
    assert all((np.diff(x) > 0).all() for x in xs)  # left to right, in label order


def test_a_single_digit_is_its_ink_box_resized_and_nothing_else():
    images, labels = _digits()
    c = multi_mnist.compose(images, labels, 200, seed=3)
    ones = np.flatnonzero(c.lengths == 1)
    assert ones.size > 10
    for i in ones:
        (x, y, w, h), src = c.boxes[i, 0], c.sources[i, 0]
        rows, cols = np.flatnonzero(images[src].any(1)), np.flatnonzero(images[src].any(0))
        ink = images[src, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        expected = np.zeros((64, 64), np.uint8)
        expected[y:y + h, x:x + w] = np.asarray(Image.fromarray(ink).resize((w, h), Image.BILINEAR))
        np.testing.assert_array_equal(c.images[i, ..., 0], expected)


def test_scale_varies_and_neighbours_may_overlap_slightly():
    images, labels = _digits()
    c = multi_mnist.compose(images, labels, 400, seed=4)
    heights = np.concatenate([b[:n, 3] for b, n in zip(c.boxes, c.lengths)])
    assert heights.min() < 20 and heights.max() > 35
    gaps = np.concatenate([b[1:n, 0] - (b[:n - 1, 0] + b[:n - 1, 2]) for b, n in zip(c.boxes, c.lengths)])
    assert (gaps < 0).any() and (gaps > 0).any() and gaps.min() >= -12


def test_pools_split_the_source_disjointly_and_independently_of_the_seed():
    train = multi_mnist.pool_indices(5000, "train", 0.2)
    test = multi_mnist.pool_indices(5000, "test", 0.2)
    assert len(train) == 4000 and len(test) == 1000
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(5000))
    np.testing.assert_array_equal(multi_mnist.pool_indices(5000, "test", 0.2), test)
    assert test.min() < 500 and test.max() > 4500  # a shuffle, not the file's tail
    with pytest.raises(ValueError, match="holdout_fraction"):
        multi_mnist.pool_indices(10, "test", 1.0)
    with pytest.raises(ValueError, match="pool"):
        multi_mnist.pool_indices(10, "val", 0.2)


def test_test_file_uses_only_held_out_digits(npz, tmp_path):
    images, _ = _digits()
    train_imgs, _ = multi_mnist.source_pool("train", mnist_npz=npz, holdout_fraction=0.25)
    test_imgs, test_labels = multi_mnist.source_pool("test", mnist_npz=npz, holdout_fraction=0.25)
    assert len(train_imgs) == 45 and len(test_imgs) == 15
    as_set = lambda a: {x.tobytes() for x in a}
    assert not as_set(train_imgs) & as_set(test_imgs)
    assert as_set(train_imgs) | as_set(test_imgs) == as_set(images)
    out = multi_mnist.write_file(tmp_path / "test.h5", "test", 30, 5, mnist_npz=npz, holdout_fraction=0.25)
    split = store.read_split(out)
    expected = multi_mnist.compose(test_imgs, test_labels, 30, 5)
    np.testing.assert_array_equal(split.images, expected.images)
    np.testing.assert_array_equal(split.digits, expected.digits)
    assert split.attrs["digit_pool"] == "test" and split.attrs["pool_size"] == 15
    assert split.attrs["recipe"] == "multi64_grey" and split.attrs["seed"] == 5


def test_load_npz_rejects_bad_files(tmp_path):
    images, labels = _digits(5)
    cases = {
        "float.npz": dict(images=images.astype(np.float32), labels=labels),
        "shape.npz": dict(images=images[:, :20], labels=labels),
        "nolabels.npz": dict(images=images),
        "range.npz": dict(images=images, labels=labels + 10),
        "count.npz": dict(images=images, labels=labels[:3]),
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ValueError, match=name):
            multi_mnist.load_npz(tmp_path / name)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        multi_mnist.load_npz(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        multi_mnist.load_npz(tmp_path / "absent.npz")


@pytest.mark.slow
def test_prepare_cli_writes_one_contract_file(npz, tmp_path):
    out = tmp_path / "mm" / "test.h5"
    r = run_module("svhn_jax.prepare", "--dataset=multi_mnist", f"--mnist_npz={npz}", "--num_examples=50",
                   "--seed=3", "--digit_pool=test", f"--out={out}")
    assert r.returncode == 0, r.stderr
    split = store.read_split(out)
    images, labels = multi_mnist.source_pool("test", mnist_npz=npz)
    expected = multi_mnist.compose(images, labels, 50, 3)
    np.testing.assert_array_equal(split.images, expected.images)
    np.testing.assert_array_equal(split.lengths, expected.lengths)
    assert split.filenames[0] == "test-s3/0000000" and split.attrs["num_examples"] == 50


@pytest.mark.slow
def test_prepare_cli_bad_input_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"junk")
    for npz_arg in (tmp_path / "absent.npz", tmp_path / "bad.npz"):
        out = tmp_path / "out.h5"
        r = run_module("svhn_jax.prepare", "--dataset=multi_mnist", f"--mnist_npz={npz_arg}",
                       "--num_examples=5", f"--out={out}")
        assert r.returncode != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(npz_arg) in lines[0] and "Traceback" not in r.stderr
        assert not list(tmp_path.glob("out.h5*"))


def test_ensure_splits_composes_train_and_held_out_test_once(npz, tmp_path):
    from configs import multi_mnist as mm_config
    c = mm_config.get_config()
    c.data_dir, c.mnist_npz = str(tmp_path), str(npz)
    c.num_multi_mnist_train, c.num_multi_mnist_test = 40, 20
    (train,), test = sources.ensure_splits(c)
    assert train == tmp_path / "multi_mnist" / "multi64_grey" / "train.h5"
    tr, te = store.read_split(train), store.read_split(test)
    assert (len(tr), len(te)) == (40, 20)
    assert (tr.attrs["digit_pool"], te.attrs["digit_pool"]) == ("train", "test")
    assert tr.images.shape[1:] == (64, 64, 1)
    stamp = test.stat().st_mtime_ns
    sources.ensure_splits(c)
    assert test.stat().st_mtime_ns == stamp  # unchanged settings: kept
    c.num_multi_mnist_test = 25
    sources.ensure_splits(c)
    assert len(store.read_split(test)) == 25  # changed settings: recomposed
    c.mnist_npz = str(tmp_path / "absent.npz")
    with pytest.raises(sources.DataMissingError, match="absent.npz"):
        sources.ensure_splits(c)


@needs_shared("data", "mnist_5k.npz")
def test_mnist_5k_pools_are_4000_train_and_1000_held_out():
    images, labels = multi_mnist.source_pool("test", mnist_npz=MNIST_5K)
    assert images.shape == (1000, 28, 28) and np.bincount(labels, minlength=10).min() > 50
    c = multi_mnist.compose(images, labels, 50, seed=0)
    assert c.images.shape == (50, 64, 64, 1) and c.images.max() == 255
