"""TFDS sources through `tfds.data_source`, offline: `tfds.testing.mock_data` stands in for the records."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import run_module

from svhn_jax.data import multi_mnist, preprocess, sources, store
from svhn_jax.data import tfds as tfds_sources
from svhn_jax.data.labels import PAD

NO_TF = importlib.util.find_spec("tensorflow") is None


def _mock_examples(name: str, split: str, tmp_path) -> list[dict]:
    ds = tfds.data_source(name, split=split, data_dir=str(tmp_path),
                          builder_kwargs={"file_format": "array_record"})
    return [ds[i] for i in range(len(ds))]


def test_single_digit_labels_are_length_one_sequences():
    lengths, digits = tfds_sources.single_digit_labels(np.array([0, 7, 9]))
    np.testing.assert_array_equal(lengths, [1, 1, 1])
    np.testing.assert_array_equal(digits, [[0, 10, 10, 10, 10], [7, 10, 10, 10, 10], [9, 10, 10, 10, 10]])
    assert store.decode_labels(lengths, digits) == ["0", "7", "9"]
    with pytest.raises(ValueError):
        tfds_sources.single_digit_labels(np.array([10]))


@pytest.mark.parametrize("recipe,channels", [("seed32_grey", 1), ("seed32_rgb", 3)])
def test_svhn_cropped_becomes_contract_files(tmp_path, recipe, channels):
    with tfds.testing.mock_data(num_examples=9):
        paths = tfds_sources.prepare_svhn_cropped(tmp_path, ["train", "test"], recipe)
        expected = {s: _mock_examples("svhn_cropped", s, tmp_path) for s in ("train", "test")}
    assert paths == [tmp_path / "svhn_cropped" / recipe / f"{s}.h5" for s in ("train", "test")]
    for split, path in zip(("train", "test"), paths):
        got, want = store.read_split(path), expected[split]
        assert got.images.shape == (9, 32, 32, channels) and len(got) == len(want)
        images = np.stack([np.asarray(ex["image"]) for ex in want])
        np.testing.assert_array_equal(got.images, images if channels == 3 else
                                      np.stack([preprocess.to_grey(im) for im in images]))
        labels = [int(ex["label"]) for ex in want]
        assert store.decode_labels(got.lengths, got.digits) == [str(d) for d in labels]
        assert (got.lengths == 1).all() and (got.digits[:, 1:] == PAD).all()
        assert got.filenames[3] == f"{split}/000003"
        assert got.attrs["recipe"] == recipe and got.attrs["source"] == f"tfds:svhn_cropped/{split}"


def test_grey_matches_pillow_luma():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    luma = (r * 299 + g * 587 + b * 114 + 500) // 1000
    assert np.abs(preprocess.to_grey(rgb)[..., 0].astype(np.int64) - luma).max() <= 1


def test_svhn_cropped_rejects_unknown_split_and_recipe(tmp_path):
    with pytest.raises(ValueError, match="valid"):
        tfds_sources.prepare_svhn_cropped(tmp_path, ["valid"], "seed32_grey")
    with pytest.raises(ValueError, match="recipe"):
        tfds_sources.prepare_svhn_cropped(tmp_path, ["train"], "nope")


def test_ensure_splits_builds_svhn_cropped(tmp_path):
    from configs import single_digit
    c = single_digit.get_config()
    c.data_dir = str(tmp_path)
    with tfds.testing.mock_data(num_examples=6):
        (train,), test = sources.ensure_splits(c)
    assert train == tmp_path / "svhn_cropped" / "seed32_grey" / "train.h5"
    assert len(store.read_split(train)) == 6 and store.read_split(test).images.shape[1:] == (32, 32, 1)


def test_mnist_loads_and_feeds_the_composer(tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        images, labels = tfds_sources.load_mnist("test", tmp_path)
        want = _mock_examples("mnist", "test", tmp_path)
        out = multi_mnist.write_file(tmp_path / "mm.h5", "test", 20, 4, tfds_dir=tmp_path)
    assert images.shape == (12, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, np.stack([ex["image"][..., 0] for ex in want]))
    np.testing.assert_array_equal(labels, [int(ex["label"]) for ex in want])
    split = store.read_split(out)
    expected = multi_mnist.compose(images, labels, 20, 4)
    np.testing.assert_array_equal(split.images, expected.images)
    np.testing.assert_array_equal(split.digits, expected.digits)
    assert split.attrs["source"] == "multi_mnist:tfds:mnist/test"


@pytest.mark.slow
@pytest.mark.skipif(not NO_TF, reason="TensorFlow is installed: TFDS would try to build for real")
def test_first_use_without_tensorflow_fails_at_once_in_one_line(tmp_path):
    with pytest.raises(tfds_sources.TfdsError, match="needs TensorFlow"):
        tfds_sources.load_mnist("train", tmp_path)
    with pytest.raises(tfds_sources.TfdsError, match="unavailable"):
        tfds_sources.load_mnist("train", tmp_path, download=False)
    assert not any(tmp_path.rglob("*.array_record*"))
    r = run_module("svhn_jax.prepare", "--dataset=svhn_cropped", f"--data_dir={tmp_path}")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "needs TensorFlow" in r.stderr
