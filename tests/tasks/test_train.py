"""End-to-end training: determinism, resume, data-parallel equivalence, learning, the CLI."""
import json
import os

import jax
import numpy as np
import pytest
from conftest import run_module

from svhn_jax import trainer as train
from svhn_jax.core import compilation_cache
from svhn_jax.core.state import make_optimizer
from svhn_jax.infer import weights
from svhn_jax.models import create_model

compilation_cache.enable()


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, data_dir):
    """The tiny config trained for its 8 steps in one go."""
    from configs import test as test_config
    c = test_config.get_config()
    c.data_dir = str(data_dir)
    workdir = tmp_path_factory.mktemp("straight")
    return workdir, train.train_and_evaluate(c, workdir)


@pytest.mark.slow
def test_workdir_is_complete(straight_run):
    workdir, final = straight_run
    for name in ["config.json", "metrics.jsonl", "final_metrics.json", "eval_predictions.npz"]:
        assert (workdir / name).is_file(), name
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["4", "8"]
    saved = json.loads((workdir / "final_metrics.json").read_text())
    for key in ["step", "eval_sequence_accuracy", "eval_digit_accuracy", "num_eval_examples",
                "train_images_per_second", "wall_seconds", "params_sha256"]:
        assert key in saved, key
    assert saved["step"] == 8 and saved["num_eval_examples"] == 100  # every eval example, none twice
    records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4, 6, 8]
    assert all("learning_rate" in r for r in records if r["split"] == "train")


@pytest.mark.slow
def test_same_config_same_params(straight_run, tiny_config, tmp_path):
    _, first = straight_run
    again = train.train_and_evaluate(tiny_config(), tmp_path)
    assert again["params_sha256"] == first["params_sha256"]
    other_seed = train.train_and_evaluate(tiny_config(seed=1), tmp_path / "seed1")
    assert other_seed["params_sha256"] != first["params_sha256"]


@pytest.mark.slow
def test_resume_equals_straight(straight_run, tiny_config, tmp_path):
    _, straight = straight_run
    half = train.train_and_evaluate(tiny_config(num_train_steps=4), tmp_path)
    assert half["step"] == 4 and half["params_sha256"] != straight["params_sha256"]
    resumed = train.train_and_evaluate(tiny_config(num_train_steps=8), tmp_path)
    assert resumed["step"] == 8
    assert resumed["params_sha256"] == straight["params_sha256"]
    steps = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["split"] == "train"]
    assert steps == [2, 4, 6, 8]  # the resumed log carries on without duplicates


def _params(path):
    _, _, variables = weights.from_workdir(path)
    return jax.tree.map(np.asarray, variables["params"])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["host_reduce", "shard_map", "pmap"])
def test_two_devices_match_one(mode, data_dir, tmp_path):
    """Same global batches on 2 devices give the 1-device parameters (up to float reduction order).

    Dropout masks are keyed by each example's global index, so they are the same on 1 or 2 devices;
    only the order of the gradient sums differs (pmean of two halves vs one sum): ~1e-7 relative.
    SGD keeps that noise linear; Adam divides each gradient by its own magnitude (+1e-8), which
    lifts the noise of nearly cancelling, near-zero gradients to a sizeable part of the learning
    rate, so the comparison is made with SGD at tight tolerance.
    """
    sgd = ["--config.optimizer=sgd", "--config.learning_rate=0.05"]
    one = tmp_path / "one"
    result = run_module("svhn_jax.main", "--config=configs/test.py", f"--workdir={one}",
                        f"--config.data_dir={data_dir}", *sgd, devices=1)
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_module("svhn_jax.main", "--config=configs/test.py", f"--workdir={tmp_path}",
                        f"--config.data_dir={data_dir}", f"--config.parallel={mode}", *sgd, devices=2)
    assert result.returncode == 0, result.stderr[-2000:]
    final = json.loads((tmp_path / "final_metrics.json").read_text())
    assert final["device_count"] == 2 and final["parallel"] == mode
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 _params(tmp_path), _params(one))


@pytest.mark.slow
@pytest.mark.parametrize("extra, collective_free", [([], True), (["--config.parallel=shard_map"], False)])
def test_cpu_devices_default(extra, collective_free, data_dir, tmp_path):
    """Without XLA_FLAGS, --cpu_devices=auto gives one device per core only to a step with no
    in-program collective (host_reduce); a step that all-reduces inside XLA gets one device."""
    result = run_module("svhn_jax.main", "--config=configs/test.py", f"--workdir={tmp_path}",
                        f"--config.data_dir={data_dir}", "--config.num_train_steps=2", *extra,
                        env={"XLA_FLAGS": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    final = json.loads((tmp_path / "final_metrics.json").read_text())
    cores = len(os.sched_getaffinity(0))
    expected = (cores, "host_reduce" if cores > 1 else "shard_map") if collective_free else (1, "shard_map")
    assert (final["device_count"], final["parallel"]) == expected


@pytest.mark.slow
def test_batch_must_divide_by_device_count(data_dir, tmp_path):
    result = run_module("svhn_jax.main", "--config=configs/test.py", f"--workdir={tmp_path}",
                        f"--config.data_dir={data_dir}", "--config.batch_size=15", devices=2)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == \
        "error: batch_size=15 must be divisible by the device count (2)"


@pytest.mark.slow
def test_cli_overrides_and_rejects_a_misspelt_key(data_dir, tmp_path):
    ok = run_module("svhn_jax.main", "--config=configs/test.py", f"--workdir={tmp_path}",
                    f"--config.data_dir={data_dir}", "--config.learning_rate=0.002", "--config.num_train_steps=2")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads((tmp_path / "config.json").read_text())["learning_rate"] == 0.002
    bad = run_module("svhn_jax.main", "--config=configs/test.py", f"--workdir={tmp_path}/b",
                     "--config.learnin_rate=0.002")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "learnin_rate" in bad.stderr.strip().splitlines()[-1]


@pytest.mark.slow  # compiles or renders for several seconds
def test_seed_cnn_parameter_count(tiny_config):
    model = create_model(tiny_config())
    variables = model.init(jax.random.key(0), np.zeros((1, 32, 32, 1), np.float32), train=False)
    assert sum(x.size for x in jax.tree.leaves(variables["params"])) == 570_135
    length_model = create_model(tiny_config(head="length"))
    variables = length_model.init(jax.random.key(0), np.zeros((1, 32, 32, 1), np.float32), train=False)
    # 5 x 11 blank outputs become 7 length + 5 x 10 digit outputs: 128 * (57 - 55) + 2 more
    assert sum(x.size for x in jax.tree.leaves(variables["params"])) == 570_135 + 129 * 2


@pytest.mark.slow
@pytest.mark.parametrize("head", ["blank", "length"])
def test_tiny_model_fits_a_tiny_set(head, data_dir, tiny_config, tmp_path):
    """96 training images learnt by heart: evaluated on themselves, ≥ 90 % whole sequences right."""
    from svhn_jax.data import sources, store
    train_file, _ = sources.ensure_splits(tiny_config())
    small = store.read_split(train_file[0])
    subset = tmp_path / "subset.h5"
    store.write_split(subset, small.images[:96], small.lengths[:96], small.digits[:96], small.filenames[:96],
                      recipe="seed32_grey", source="test")
    c = tiny_config(dataset="hdf5", train_file=str(subset), eval_file=str(subset), head=head,
                    batch_size=32, num_train_steps=400, learning_rate=2e-3, log_every_steps=100,
                    eval_every_steps=1000, checkpoint_every_steps=1000)
    final = train.train_and_evaluate(c, tmp_path / "run")
    assert final["eval_sequence_accuracy"] >= 0.9, final["eval_sequence_accuracy"]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_weight_decay_is_l2_added_to_the_gradient(momentum):
    """As torch.optim.SGD(weight_decay=wd): the first update is -lr * (g + wd * w), then momentum."""
    from configs import default
    c = default.get_config()
    c.optimizer, c.learning_rate, c.momentum, c.weight_decay = "sgd", 0.1, momentum, 0.01
    tx, _ = make_optimizer(c)
    w, g = {"w": np.array([2.0, -4.0], np.float32)}, {"w": np.array([0.5, 0.5], np.float32)}
    opt_state = tx.init(w)
    updates, opt_state = tx.update(g, opt_state, w)
    np.testing.assert_allclose(updates["w"], [-0.1 * (0.5 + 0.02), -0.1 * (0.5 - 0.04)], rtol=1e-6)
    updates, _ = tx.update(g, opt_state, w)  # same w, g: trace = momentum * first + this step's
    first = np.array([0.52, 0.46])
    np.testing.assert_allclose(updates["w"], -0.1 * (momentum * first + first), rtol=1e-6)
