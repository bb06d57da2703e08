"""The line_reader task: CTC fine-tuning of the imported PP-OCRv6 digits reader in the one trainer.

A tiny run (configs/line_reader_test.py) on real files: a small synthetic SVHN format-1 release
(PNGs + digitStruct.mat, as the real train photos are laid out) cut into lines with renders added,
evaluated on those same lines. It fits them (the lines' CTC loss drops from the imported weights'),
a second run with the same seed ends at the same params_sha256, and a run stopped at its checkpoint
and resumed ends there too. The stored lines are the reader's own input, a wrong init_from is a
one-line error, and scripts/ship_line_reader.py exports a run in the shipped format and reads lines.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import REPO, module_env

from configs import line_reader_test
from svhn_jax import trainer
from svhn_jax.core import compilation_cache, parallel
from svhn_jax.core.errors import UserError
from svhn_jax.core.state import create_train_state, make_optimizer
from svhn_jax.data import lines, paths, store
from svhn_jax.data.synth.release import write_release
from svhn_jax.infer import line_reading
from svhn_jax.models import create_model, graph_io, graph_net
from svhn_jax.tasks import line_reader
from svhn_jax.tasks.base import TaskData

compilation_cache.enable()


@pytest.fixture(scope="module")
def config_of(tmp_path_factory):
    """configs/line_reader_test.py over a 12-photo format-1 release, evaluated on its training lines."""
    root = tmp_path_factory.mktemp("line_data")
    write_release(root / "real" / "train", 12, seed=11, workers=1)

    def make(**overrides):
        c = line_reader_test.get_config()
        c.data_dir = str(root / "data")
        c.real_dir = str(root / "real")
        c.eval_split = "train"
        for k, v in overrides.items():
            setattr(c, k, v)
        return c
    return make


@pytest.fixture(scope="module")
def straight(config_of, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("line_straight")
    return workdir, trainer.train_and_evaluate(config_of(), workdir)


def imported_loss(config) -> float:
    """The evaluation's mean CTC loss over the lines with the imported weights, by the task's own evaluation."""
    split = store.read_split(paths.split_file(config, config.eval_split))
    model = create_model(config)
    tx, _ = make_optimizer(config)
    par = parallel.DataParallel("shard_map")
    state = par.put_state(jax.device_get(create_train_state(jax.random.key(0), model, tx, split.images.shape[1:])))
    data = TaskData(train={}, eval=split, input_shape=split.images.shape[1:])
    metrics, _ = line_reader.TASK.make_evaluate(config, model, par)(state, data)
    return metrics["eval_loss"]


def test_a_tiny_run_fits_its_lines(straight, config_of):
    workdir, final = straight
    assert final["task"] == "line_reader" and final["step"] == 6 and final["eval_examples"] == 12 + 16
    before = imported_loss(config_of())
    assert np.isfinite(before) and final["eval_loss"] < 0.8 * before
    rows = json.loads((workdir / "eval_predictions.json").read_text())
    assert len(rows) == 28 and {"file", "truth", "reading", "confidence"} <= rows[0].keys()
    assert sum(r["truth"] == r["reading"] for r in rows) == round(final["eval_line_accuracy"] * 28)
    assert rows[0]["file"] == "train/1.png" and rows[-1]["file"].startswith("render-1/")


def test_same_seed_same_params_and_resume_ends_there_too(straight, config_of, tmp_path):
    _, final = straight
    again = trainer.train_and_evaluate(config_of(), tmp_path / "again")
    assert again["params_sha256"] == final["params_sha256"]
    trainer.train_and_evaluate(config_of(num_train_steps=3), tmp_path / "resumed")
    assert (tmp_path / "resumed" / "checkpoints" / "3").is_dir()
    resumed = trainer.train_and_evaluate(config_of(), tmp_path / "resumed")
    assert resumed["params_sha256"] == final["params_sha256"]
    other = trainer.train_and_evaluate(config_of(seed=1, num_train_steps=1), tmp_path / "other")
    assert other["params_sha256"] != final["params_sha256"]


def test_stored_lines_are_the_readers_own_input(config_of, straight):
    """A stored line is cut as the pipeline cuts a box and, prepared on device, equals the pipeline's
    normalised crop with its zero padding."""
    config = config_of()
    split = store.read_split(paths.split_file(config, "train"))
    assert split.images.shape[1:] == (48, 320, 3) and split.images.dtype == np.uint8
    from PIL import Image

    from svhn_jax.data.svhn.digitstruct import read_digitstruct
    release = Path(config.real_dir) / "train"
    entry = read_digitstruct(release / "digitStruct.mat")[0]
    photo = np.asarray(Image.open(release / entry.name).convert("RGB"))
    boxes = np.array([[b.left, b.top, b.width, b.height] for b in entry.boxes])
    crop = lines.cut_line(photo, boxes, 0.15)
    x0, y0 = boxes[:, :2].min(0)
    union = (x0, y0, (boxes[:, 0] + boxes[:, 2]).max() - x0, (boxes[:, 1] + boxes[:, 3]).max() - y0)
    assert np.array_equal(crop, line_reading.rotate_crop(photo, line_reading.box_quad(union, 0.15)))
    width = line_reading.input_width(crop.shape[1], crop.shape[0])
    want = line_reading.normalise_line(crop, width).transpose(1, 2, 0)
    got = np.asarray(line_reader.prepare(split.images[:1]))[0]
    assert want.shape == got.shape
    assert np.abs(got - want).max() < 1e-5
    assert store.decode_labels(split.lengths[:1], split.digits[:1])[0] == "".join(str(b.label % 10)
                                                                                   for b in entry.boxes)


def test_init_from_is_refused_in_one_line(config_of, tmp_path):
    with pytest.raises(UserError, match="line_reader_weights"):
        trainer.train_and_evaluate(config_of(init_from="pretrained"), tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_export_writes_the_shipped_format_and_refuses_an_existing_folder(straight, config_of, tmp_path):
    """scripts/ship_line_reader.py: the run's weights in a new folder LineReader loads (float16 here), the
    flat params_sha256 recorded, the graph the shipped one's; an existing --out is one line, left as it was."""
    workdir, final = straight
    out = tmp_path / "candidate"
    script = str(REPO / "scripts" / "ship_line_reader.py")
    proc = subprocess.run([sys.executable, script, "export", f"--workdir={workdir}", f"--out={out}",
                           "--dtype=float16"], cwd=REPO, env=module_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["graph.json", "info.json", "params.msgpack"]
    info = json.loads((out / "info.json").read_text())
    params = graph_io.read_params(out / "params.msgpack")
    assert info["params_sha256"] == graph_io.params_sha256(params) and info["dtype"] == "float16"
    assert {str(v.dtype) for v in params.values()} == {"float16"}
    assert info["fine_tune"]["run_params_sha256"] == final["params_sha256"] and info["fine_tune"]["step"] == 6
    assert info["licence"] == "Apache-2.0" and "ship_line_reader.py export" in info["command"]
    shipped = graph_io.read_json(graph_net.SHIPPED / "graph.json")
    assert graph_io.read_json(out / "graph.json")["nodes"] == shipped["nodes"]
    photos = Path(config_of().real_dir) / "train"
    proc = subprocess.run([sys.executable, script, "evaluate", f"--photos={photos}", f"--weights=shipped,{out}"],
                          cwd=REPO, env=module_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == ["shipped", str(out)]
    assert all("/12 lines right" in line for line in proc.stdout.splitlines())
    before = (out / "params.msgpack").read_bytes()
    proc = subprocess.run([sys.executable, script, "export", f"--workdir={workdir}", f"--out={out}"], cwd=REPO,
                          env=module_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [f"error: --out={out} exists; give a new "
                                                                          "folder (nothing is replaced)"]
    assert (out / "params.msgpack").read_bytes() == before
