"""The real-SVHN recipes (configs/seed_real.py, reader_real.py, seed_renders.py) and `train_limit`: the
first N training examples, in file order, every time (the data-efficiency runs of docs/results.md)."""
import jax
import numpy as np
import pytest

from svhn_jax import trainer as train
from svhn_jax.core import config as config_lib
from svhn_jax.core.errors import UserError
from svhn_jax.core.state import create_train_state, make_optimizer
from svhn_jax.data import store
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
