"""The real-SVHN recipes (configs/seed_real.py, reader_real.py, seed_renders.py) and `train_limit`: the
first N training examples, in file order, every time (the data-efficiency runs of docs/results.md)."""
import jax
import numpy as np
import pytest
from conftest import REPO

from svhn_jax import trainer as train
from svhn_jax.core import config as config_lib
from svhn_jax.core.errors import UserError
from svhn_jax.core.state import create_train_state, make_optimizer
from svhn_jax.data import paths, store
from svhn_jax.data.model_input import input_shape
from svhn_jax.models import create_model
from svhn_jax.pretrained import folder
from svhn_jax.tasks import reader


def write_split(path, n):
    """A contract file of `n` examples: image i is filled with i, its label is the number i."""
    lengths, digits = store.encode_labels([str(i) for i in range(n)])
    with store.SplitWriter(path, (32, 32, 1), recipe="seed32_grey", source="test") as w:
        w.append(np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 1), np.uint8),
                 lengths, digits, [f"{i}.png" for i in range(n)])
    return path


@pytest.mark.parametrize("name", ["seed_real", "reader_real", "seed_renders"])
def test_real_configs_load_with_known_keys(name):
    module = __import__(f"configs.{name}", fromlist=["get_config"])
    c = module.get_config()
    assert set(c.keys()) == set(config_lib.reader().keys())  # no misspelt key
    assert c.recipe == "seed32_grey" and c.train_limit == 0


def test_seed_real_is_the_seed_convnet_fine_tuned_from_shipped_renders_weights():
    from configs import seed_real
    c = seed_real.get_config()
    assert (c.model, c.head, c.dataset, c.recipe) == ("seed_cnn", "blank", "svhn", "seed32_grey")
    assert (c.train_splits, c.eval_split) == (("train",), "test")
    assert c.init_from == "pretrained:seed_renders" and (folder("seed_renders") / "info.json").is_file()
    model, (tx, _) = create_model(c), make_optimizer(c)
    state = jax.device_get(create_train_state(jax.random.key(0), model, tx, input_shape(c, (32, 32, 1))))
    loaded = train.initialize(state, c.init_from, "reader")  # the shipped weights fit the network
    assert not np.array_equal(loaded.params["fc"]["kernel"], state.params["fc"]["kernel"])


def test_train_limit_reads_the_first_examples_in_file_order(tmp_path):
    files = [write_split(tmp_path / "a.h5", 10), write_split(tmp_path / "b.h5", 5)]
    c = config_lib.reader()
    c.train_limit = 12  # all of a.h5, then the first two of b.h5
    data = reader.TASK.read_data(c, files, files[1])
    np.testing.assert_array_equal(data.train["images"][:, 0, 0, 0], [*range(10), 0, 1])
    np.testing.assert_array_equal(data.train["lengths"], [1] * 10 + [1, 1])
    again = reader.TASK.read_data(c, files, files[1])
    for k in data.train:
        np.testing.assert_array_equal(again.train[k], data.train[k])
    c.train_limit = 0
    assert len(reader.TASK.read_data(c, files, files[1]).train["images"]) == 15


def test_train_limit_beyond_the_training_set_or_negative_is_one_clear_error(tmp_path):
    files = [write_split(tmp_path / "a.h5", 10)]
    c = config_lib.reader()
    c.train_limit = 11
    with pytest.raises(UserError, match=r"train_limit=11 is larger than the training set \(10 examples\)"):
        reader.TASK.read_data(c, files, files[0])
    c.train_limit = -1
    with pytest.raises(UserError, match="train_limit must be 0"):
        reader.TASK.check_config(c)


@pytest.mark.slow
def test_train_limit_run_is_reproducible(tiny_config, tmp_path):
    first = train.train_and_evaluate(tiny_config(train_limit=64), tmp_path / "a")
    again = train.train_and_evaluate(tiny_config(train_limit=64), tmp_path / "b")
    assert first["num_train_examples"] == 64 and again["params_sha256"] == first["params_sha256"]
    whole = train.train_and_evaluate(tiny_config(), tmp_path / "c")
    assert whole["num_train_examples"] == 256 and whole["params_sha256"] != first["params_sha256"]


@pytest.mark.parametrize("name", ["seed_real", "reader_real"])
def test_mixing_renders_reads_the_real_file_k_times_and_the_renders_under_the_given_data_dir(name, tmp_path):
    module = __import__(f"configs.{name}", fromlist=["get_config"])
    assert module.get_config("0").to_dict() == module.get_config().to_dict()  # the default: real photos only
    c = module.get_config("3")
    c.lock()
    c.data_dir = str(tmp_path)  # as --config.data_dir=D: the file paths follow it
    write_split(paths.split_path(tmp_path, "svhn", "seed32_grey", "train"), 4)
    write_split(paths.split_path(tmp_path, "synthetic", "seed32_grey", "train"), 6)
    write_split(paths.split_path(tmp_path, "svhn", "seed32_grey", "test"), 2)
    train_files, eval_file = paths.split_files(c)
    assert c.dataset == "hdf5" and eval_file == paths.split_path(tmp_path, "svhn", "seed32_grey", "test")
    assert train_files == [paths.split_path(tmp_path, "svhn", "seed32_grey", "train")] * 3 + [
        paths.split_path(tmp_path, "synthetic", "seed32_grey", "train")]
    data = reader.TASK.read_data(c, train_files, eval_file)
    np.testing.assert_array_equal(data.train["images"][:, 0, 0, 0], [*range(4)] * 3 + [*range(6)])
    assert len(data.eval.images) == 2


def test_a_bad_number_of_real_copies_is_one_line_from_the_config_loader():
    with pytest.raises(ValueError, match="get_config\\(\\) failed: ValueError: the number of real copies must be 0"):
        config_lib.load_file(f"{REPO}/configs/seed_real.py:-1")
