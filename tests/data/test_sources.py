"""The data registry and paths: each dataset's `ensure_split`, where files live, and prepare --dataset=synthetic."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_module

from svhn_jax.data import paths, sources, store


def test_every_dataset_of_the_default_config_is_registered():
    from configs import default
    assert default.get_config().dataset in sources.REGISTRY
    for name in ("synthetic", "svhn", "svhn_cropped", "multi_mnist", "hdf5"):
        assert callable(sources.get(name))
    with pytest.raises(ValueError, match="unknown dataset 'nope'; choose one of synthetic"):
        sources.get("nope")


def test_paths_follow_the_layout_and_the_environment(tiny_config, tmp_path, monkeypatch):
    c = tiny_config(data_dir=str(tmp_path), train_splits=("train", "extra"))
    assert paths.split_files(c) == ([tmp_path / "synthetic" / "seed32_grey" / "train.h5",
                                     tmp_path / "synthetic" / "seed32_grey" / "extra.h5"],
                                    tmp_path / "synthetic" / "seed32_grey" / "test.h5")
    assert paths.raw_dir(c, "test") == tmp_path / "synthetic" / "raw" / "test"
    assert [paths.split_seed(s) for s in ("train", "test", "extra", "val", "other")] == [1, 2, 3, 4, 5]
    c = tiny_config(dataset="hdf5", train_file="a.h5,b.h5", eval_file="c.h5")
    assert paths.named_split_files(c) == [("train_file", Path("a.h5")), ("train_file", Path("b.h5")),
                                          ("eval_file", Path("c.h5"))]
    monkeypatch.delenv("SVHN_JAX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.default_data_dir() == tmp_path / "cache" / "svhn_jax" / "data"
    monkeypatch.setenv("SVHN_JAX_DATA", str(tmp_path / "elsewhere"))
    assert paths.data_dir(tiny_config(data_dir="")) == tmp_path / "elsewhere"


def test_missing_files_name_what_to_do(tiny_config, tmp_path):
    c = tiny_config(dataset="svhn", data_dir=str(tmp_path))
    with pytest.raises(sources.DataMissingError, match="make it with: python -m svhn_jax.prepare --dataset=svhn "
                                                       "--splits=train,test --recipe=seed32_grey"):
        sources.ensure_splits(c)
    c = tiny_config(dataset="hdf5", train_file=str(tmp_path / "absent.h5"), eval_file=str(tmp_path / "e.h5"))
    with pytest.raises(sources.DataMissingError, match=r"absent\.h5 is missing \(config\.train_file"):
        sources.ensure_splits(c)


@pytest.mark.slow
def test_prepare_makes_the_synthetic_splits_training_reads(tiny_config, tmp_path):
    r = run_module("svhn_jax.prepare", "--dataset=synthetic", "--splits=train,test", "--num_examples=6",
                   f"--data_dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    c = tiny_config(data_dir=str(tmp_path), num_synthetic_train=6, num_synthetic_test=6)
    train, test = paths.split_files(c)
    stamps = [p.stat().st_mtime_ns for p in (*train, test)]
    assert sources.ensure_splits(c) == (train, test)
    assert [p.stat().st_mtime_ns for p in (*train, test)] == stamps  # the very files training wants
    assert store.read_split(test).attrs["source"] == "synthetic(renderer=2, seed=2, num=6)"
    bad = run_module("svhn_jax.prepare", "--dataset=synthetic", "--recipe=nope", f"--data_dir={tmp_path}")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == ["error: unknown recipe 'nope'; choose "
                                                                      "one of seed32_grey, seed32_rgb, "
                                                                      "goodfellow64_rgb, multi64_grey, scene128_rgb"]
