"""The ONNX backend: the shipped graphs (`svhn_jax/pretrained/onnx`) give JAX's logits and JAX's readings
under onnxruntime (`infer.onnx`), `predict --backend=onnx` imports no JAX, and the export command
(`python -m svhn_jax.export`) makes them again and says in one line what stops it.

Skipped without onnxruntime (pyproject's ``[onnx]`` extra); the export tests also without the exporter
(``pip install --no-deps jax2onnx==0.17.1``). CI installs both (.ci/run)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED, module_env, needs_shared, run_module

pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install -e '.[onnx]')")

import jax

from svhn_jax import pretrained
from svhn_jax.data.model_input import prepare_images
from svhn_jax.data.preprocess import apply_recipe, letterbox
from svhn_jax.data.synth.release import render_example
from svhn_jax.data.synth.scene import render_scene
from svhn_jax.infer import onnx, onnx_export, whole_photo
from svhn_jax.infer.localiser import Localiser
from svhn_jax.infer.photos import find_images, load_image, read_labels
from svhn_jax.infer.reader import Reader, views
from svhn_jax.models import localiser as localiser_module
from svhn_jax.models.decoding import SIZE, decode_boxes, decode_sequences
from svhn_jax.models.sequences import infer_sequences

TOLERANCE = 1e-4  # max |JAX - onnxruntime| of any logit
RENDER_SEED = 21
needs_exporter = pytest.mark.skipif(importlib.util.find_spec("jax2onnx") is None,
                                    reason="the exporter is not installed (pip install --no-deps jax2onnx==0.17.1)")
DEV_PHOTOS = SHARED / "data" / "real_photos_dev"


@pytest.fixture(scope="module")
def jax_models():
    return Reader.load(), Localiser.load()


@pytest.fixture(scope="module")
def onnx_models():
    return onnx.load_reader(), onnx.load_localiser()


# ----------------------------------------------------------------------------- the shipped graphs

def test_shipped_graphs_are_of_the_shipped_weights():
    info = json.loads((onnx.SHIPPED / "info.json").read_text())
    assert sorted(info) == ["localiser", "reader"]
    for role, entry in info.items():
        shipped = json.loads((pretrained.folder(role) / "info.json").read_text())
        assert entry["params_sha256"] == shipped["params_sha256"], role
        assert entry["source"] == f"pretrained:{role}" and entry["exporter"] == "jax2onnx"
        assert entry["opset"] == onnx_export.OPSET and entry["input"]["dtype"] == "uint8"
        assert (onnx.SHIPPED / entry["file"]).stat().st_size == entry["bytes"]
    assert info["reader"]["input"]["shape"] == ["N", 32, 32, 1] and info["reader"]["recipe"] == "seed32_grey"
    assert info["reader"]["outputs"] == {"length": {"dtype": "float32", "shape": ["N", 7]},
                                         "digits": {"dtype": "float32", "shape": ["N", 5, 10]}}
    assert info["localiser"]["input"]["shape"] == ["N", SIZE, SIZE, 3]


def _reader_inputs() -> np.ndarray:
    """100 rendered synthetic crops (the training recipe) and the 27 test-time views of each labelled
    sample photo's box: uint8 [316, 32, 32, 1]."""
    crops = []
    for i in range(100):
        image, boxes = render_example(RENDER_SEED, i)
        crops.append(apply_recipe(image, np.array([[b.left, b.top, b.width, b.height] for b in boxes]), "seed32_grey"))
    sample_views = [views(load_image(REPO / "samples" / r["file"]), "seed32_grey", r["box"], tta=True)
                    for r in read_labels(REPO / "samples" / "labels.csv")]
    return np.concatenate([np.stack(crops), *sample_views])


def _localiser_inputs() -> np.ndarray:
    """Every sample photo and 4 rendered whole scenes, letterboxed: uint8 [12, 128, 128, 3]."""
    photos = [letterbox(load_image(p), SIZE)[0] for p in sorted((REPO / "samples").glob("*.png"))]
    return np.stack(photos + [render_scene(RENDER_SEED, i)[0] for i in range(4)])


def _max_diff(jax_out, onnx_out: dict[str, np.ndarray]) -> dict[str, float]:
    assert sorted(jax_out) == sorted(onnx_out)
    for name, value in jax_out.items():
        assert onnx_out[name].shape == value.shape and onnx_out[name].dtype == np.float32, name
    return {name: float(np.abs(np.asarray(value) - onnx_out[name]).max()) for name, value in jax_out.items()}


def test_reader_graph_gives_jax_logits_on_rendered_crops_and_sample_views():
    images = _reader_inputs()
    config, model, variables = pretrained.load("reader")
    reading, logits = jax.jit(lambda v, x: infer_sequences(model, config, v, x))(variables, images)
    graph = onnx.load(None, "reader")
    got = graph(images)
    diff = _max_diff(logits, got)
    assert max(diff.values()) <= TOLERANCE, diff
    # The same readings, decoded in numpy from either.
    for a, b in zip(reading, decode_sequences(got)):
        np.testing.assert_allclose(np.asarray(a), b, atol=1e-5)
    # The batch dimension is dynamic: one crop, and one box's 27 views, give the same numbers.
    for part in (slice(0, 1), slice(100, 127)):
        small = graph(images[part])
        assert all(np.abs(small[n] - got[n][part]).max() <= TOLERANCE for n in got)


def test_localiser_graph_gives_jax_outputs_on_letterboxed_photos(jax_models):
    images = _localiser_inputs()
    localiser = jax_models[1]
    outputs = jax.device_get(localiser.run(images))
    got = onnx.load(None, "localiser")(images)
    diff = _max_diff(outputs, got)
    assert max(diff.values()) <= TOLERANCE, diff
    boxes, confidence, p_none = decode_boxes(outputs, 3, localiser.softmax)
    got_boxes, got_confidence, got_p_none = decode_boxes(got, 3)
    np.testing.assert_allclose(got_boxes, boxes, atol=1e-3)
    np.testing.assert_allclose(got_confidence, confidence, atol=1e-5)
    np.testing.assert_allclose(got_p_none, p_none, atol=1e-5)


@pytest.mark.parametrize("overrides", [{}, {"standardize": False}, {"crop_size": 28}, {"model": "localiser"}])
def test_graph_preprocessing_is_the_production_preprocessing(overrides):
    """The graph's per-axis reductions compute `prepare_images` (evaluation mode) / `localiser.prepare`."""
    config, _, _ = pretrained.load("localiser" if overrides.get("model") == "localiser" else "reader")
    config.update(overrides)
    rng = np.random.default_rng(0)
    shape = (SIZE, SIZE, 3) if config.model == "localiser" else (32, 32, 1)
    images = rng.integers(0, 256, (6, *shape), dtype=np.uint8)
    images[1] = 7                                           # flat: the deviation's floor
    images[2] = 100 + rng.integers(0, 3, shape)             # nearly flat
    images[3] = np.where(rng.random(shape) < 0.02, 255, 0)  # a few bright pixels
    production = localiser_module.prepare if config.model == "localiser" else (lambda x: prepare_images(x, config))
    np.testing.assert_allclose(np.asarray(jax.jit(onnx_export.graph_prepare(config))(images)),
                               np.asarray(jax.jit(production)(images)), atol=1e-5)


def test_traced_upsampling_is_the_localisers():
    x = np.random.default_rng(1).normal(size=(2, 4, 3, 5)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(onnx_export._up_repeat(x)), np.asarray(localiser_module._up(x)))
    original = localiser_module._up
    with onnx_export._traceable_localiser():
        assert localiser_module._up is onnx_export._up_repeat
    assert localiser_module._up is original


def test_runtime_rejects_what_the_graph_cannot_take(tmp_path):
    graph = onnx.load(None, "reader")
    with pytest.raises(onnx.OnnxModelError, match="uint8"):
        graph(np.zeros((2, 32, 32, 1), np.float32))
    with pytest.raises(onnx.OnnxModelError, match="shape"):
        graph(np.zeros((2, 32, 32, 3), np.uint8))
    assert graph(np.zeros((0, 32, 32, 1), np.uint8))["digits"].shape == (0, 5, 10)
    with pytest.raises(onnx.OnnxModelError, match="holds no exported reader"):
        onnx.load(tmp_path, "reader")
    (tmp_path / "reader.onnx").write_bytes(b"not a graph")
    with pytest.raises(onnx.OnnxModelError, match="cannot load the exported reader"):
        onnx.load(tmp_path, "reader")


# ----------------------------------------------------------------------------- readings

def _answers(reader, localiser, paths: list[str], boxes: dict | None = None) -> dict[str, dict]:
    """predict's answer per photo (`whole_photo.read_file`, then `answer`), with the labelled box if any."""
    out = {}
    for file, error in find_images(paths):
        assert error is None, (file, error)
        result, _, _ = whole_photo.read_file(reader, localiser, file, (boxes or {}).get(Path(file).name))
        out[Path(file).name] = whole_photo.answer(file, result, 0.0)
    return out


def _assert_same_readings(jax_models, onnx_models, paths: list[str], boxes: dict | None = None) -> None:
    want, got = _answers(*jax_models, paths, boxes), _answers(*onnx_models, paths, boxes)
    assert sorted(want) == sorted(got)
    differ = {name: ((a["number"], a["reading"], a["box"]), (got[name]["number"], got[name]["reading"],
                                                             got[name]["box"]))
              for name, a in want.items()
              if (a["number"], a["reading"], a["box"]) != (got[name]["number"], got[name]["reading"], got[name]["box"])}
    assert differ == {}
    for name, a in want.items():
        assert got[name]["confidence"] == pytest.approx(a["confidence"], abs=1e-4), name


def test_same_readings_and_boxes_as_jax_on_the_samples(jax_models, onnx_models):
    samples = [str(REPO / "samples")]
    _assert_same_readings(jax_models, onnx_models, samples)  # the localiser finds the number
    labels = {r["file"]: r["box"] for r in read_labels(REPO / "samples" / "labels.csv")}
    _assert_same_readings(jax_models, onnx_models, samples, labels)  # the labelled box


@pytest.mark.slow
@needs_shared("data", "real_photos_dev")
@pytest.mark.parametrize("folder", ["test", "users"])
def test_same_readings_and_boxes_as_jax_on_the_dev_photos(jax_models, onnx_models, folder):
    _assert_same_readings(jax_models, onnx_models, [str(DEV_PHOTOS / folder)])


# ----------------------------------------------------------------------------- predict --backend=onnx

_PREDICT_WITHOUT_JAX = """
import runpy, sys
sys.argv = ["predict", "--backend=onnx", "--json", *sys.argv[1:]]
try:
    runpy.run_module("svhn_jax.predict", run_name="__main__")
except SystemExit as e:
    status = e.code
print("STATUS", status, "JAX", sorted(m for m in ("jax", "jaxlib", "flax") if m in sys.modules))
"""


def test_predict_with_the_onnx_backend_imports_no_jax():
    result = subprocess.run([sys.executable, "-c", _PREDICT_WITHOUT_JAX, "samples/"], cwd=REPO, env=module_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "STATUS 0 JAX []", (lines[-1], result.stderr[-2000:])
    answers = [json.loads(line) for line in lines[:-1]]
    assert len(answers) == 8 and all(a["box"] for a in answers)
    assert {a["file"].split("/")[-1]: a["number"] for a in answers}["svhn_train_2.png"] == "23"


def test_predict_with_the_onnx_backend_refuses_a_run_in_one_line(tmp_path):
    for flag in ("--workdir=runs/mine", "--localiser=runs/finder"):
        result = run_module("svhn_jax.predict", "--backend=onnx", flag, "samples/", timeout=120)
        assert result.returncode == 2 and result.stdout == ""
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: --backend=onnx") and f"python -m svhn_jax.export --format=onnx {flag}" in line
    result = run_module("svhn_jax.predict", "--backend=onnx", f"--onnx_dir={tmp_path}", "samples/", timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "holds no exported reader" in result.stderr
    result = run_module("svhn_jax.predict", "--backend=onnx", "--localiser=none", "samples/svhn_train_2.png",
                        timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("samples/svhn_train_2.png: "), result.stderr


# ----------------------------------------------------------------------------- the export command

def _export(*args: str) -> subprocess.CompletedProcess:
    return run_module("svhn_jax.export", *args, timeout=300)


@needs_exporter
def test_export_command_writes_the_shipped_graphs_again(tmp_path):
    out = tmp_path / "graphs"
    result = _export("--format=onnx", f"--out={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["info.json", "localiser.onnx", "reader.onnx"]
    info, shipped = json.loads((out / "info.json").read_text()), json.loads((onnx.SHIPPED / "info.json").read_text())
    for role in ("reader", "localiser"):
        assert info[role]["params_sha256"] == shipped[role]["params_sha256"]
        assert {k: v for k, v in info[role].items() if k != "export_seconds"} == \
               {k: v for k, v in shipped[role].items() if k != "export_seconds"}, role
    # The same functions as the shipped graphs (so those are up to date with the exporter).
    images = {"reader": _reader_inputs()[:40], "localiser": _localiser_inputs()}
    for role, x in images.items():
        fresh, ours = onnx.load(out, role)(x), onnx.load(None, role)(x)
        assert all(np.abs(fresh[n] - ours[n]).max() <= 1e-6 for n in ours), role
    reader = onnx.load_reader(out)
    assert reader.config.recipe == "seed32_grey"
    result = run_module("svhn_jax.predict", "--backend=onnx", f"--onnx_dir={out}", "samples/svhn_train_2.png",
                        timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("samples/svhn_train_2.png: 23 "), result.stderr


@needs_exporter
def test_export_command_errors_are_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    localiser_run = tmp_path / "localiser_run"
    localiser_run.mkdir()
    (localiser_run / "config.json").write_text(json.dumps({"model": "localiser", "task": "localiser"}))
    cases = [(["--format=tflite", f"--out={tmp_path / 'x'}"], "--format=tflite"),
             ([f"--out={tmp_path / 'a_file' / 'sub'}"], "cannot write there"),
             ([f"--out={tmp_path / 'y'}", f"--workdir={localiser_run}"], "holds a localiser, not a reader"),
             ([f"--out={tmp_path / 'z'}"], "pip install --no-deps jax2onnx==0.17.1")]
    for args, expected in cases:
        env = None
        if expected.startswith("pip"):  # the exporter made unimportable
            env = {"PYTHONPATH": f"{tmp_path / 'no_exporter'}:{module_env().get('PYTHONPATH', '')}".rstrip(":")}
            (tmp_path / "no_exporter").mkdir(exist_ok=True)
            (tmp_path / "no_exporter" / "jax2onnx.py").write_text("raise ModuleNotFoundError(\"No module named "
                                                                   "'jax2onnx'\", name='jax2onnx')\n")
        result = run_module("svhn_jax.export", *args, env=env, timeout=120)
        assert result.returncode == 1, (args, result.stderr[-2000:])
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and expected in line, (args, line)
    assert not (tmp_path / "y").exists() or not any((tmp_path / "y").glob("*.onnx"))


def _export_refused(*args: str) -> str:
    """The export's one error line (exit status 1, no traceback)."""
    result = _export(*args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, (args, result.stderr[-2000:])
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    return line


def _contents(folder: Path) -> dict[str, bytes | None]:
    return {p.name: p.read_bytes() if p.is_file() else None for p in sorted(folder.iterdir())}


@needs_exporter
def test_export_never_replaces_what_it_did_not_write_unasked(tmp_path):
    cases = {"own_graph": {"reader.onnx": b"my own graph"}, "not_json": {"info.json": b"my notes, not JSON"},
             "a_list": {"info.json": b"[1, 2]"}, "a_folder": {"info.json": None},
             "own_localiser": {"localiser.onnx": b"mine", "info.json": b'{"reader": {"file": "reader.onnx"}}'}}
    for name, files in cases.items():
        out = tmp_path / name
        out.mkdir()
        for file, data in files.items():
            (out / file).mkdir() if data is None else (out / file).write_bytes(data)
        before = _contents(out)
        line = _export_refused("--format=onnx", f"--out={out}")
        assert str(out) in line and ("--overwrite" in line or "not a regular file" in line), (name, line)
        assert _contents(out) == before, name  # nothing replaced, nothing half-written beside it
    shipped = _contents(onnx.SHIPPED)
    line = _export_refused("--format=onnx", f"--out={onnx.SHIPPED}")
    assert "shipped graphs" in line and "--overwrite" in line, line
    assert _contents(onnx.SHIPPED) == shipped


@needs_exporter
def test_export_with_a_broken_run_is_one_line(tmp_path):
    for name, text in {"broken": "{", "a_list": "[]"}.items():
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text(text)
        for flag in ("--workdir", "--localiser"):
            line = _export_refused("--format=onnx", f"--out={tmp_path / 'out'}", f"{flag}={run}")
            assert f"{flag}={run}: cannot load a trained run" in line, line
    assert not list((tmp_path / "out").glob("*.onnx")) and not (tmp_path / "out" / "info.json").exists()


@needs_exporter
def test_export_replaces_its_own_files_and_with_overwrite_the_users(tmp_path):
    out = tmp_path / "graphs"
    out.mkdir()
    (out / "reader.onnx").write_bytes(b"my own graph")
    (out / "info.json").write_text("my notes")
    result = _export("--format=onnx", f"--out={out}", "--localiser=none", "--overwrite")
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads((out / "info.json").read_text())
    assert list(info) == ["reader"] and info["reader"]["bytes"] == (out / "reader.onnx").stat().st_size
    again = _export("--format=onnx", f"--out={out}", "--localiser=none")  # its own files: replaced unasked
    assert again.returncode == 0, again.stderr[-2000:]
    assert onnx.load_reader(out).config.recipe == "seed32_grey"


# ----------------------------------------------------------------------------- a folder of graphs that does not fit

def _graph_folder(root: Path, name: str, reader: str = "reader.onnx", info: dict | str | None = None) -> Path:
    """A copy of the shipped graphs in ``root/name`` whose reader.onnx is the shipped `reader` file and
    whose info.json is `info` (a dict: the shipped one updated; a str: that text; None: the shipped one)."""
    folder = root / name
    folder.mkdir()
    (folder / "reader.onnx").write_bytes((onnx.SHIPPED / reader).read_bytes())
    (folder / "localiser.onnx").write_bytes((onnx.SHIPPED / "localiser.onnx").read_bytes())
    shipped = json.loads((onnx.SHIPPED / "info.json").read_text())
    if isinstance(info, dict):
        shipped["reader"].update(info)
    (folder / "info.json").write_text(info if isinstance(info, str) else json.dumps(shipped))
    return folder


def _dynamic_reader(folder: Path) -> Path:
    """A folder whose reader.onnx takes crops of any size (not an export's: H and W are named)."""
    import onnx as onnx_lib
    from onnx import TensorProto, helper
    folder.mkdir()
    images = helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", "H", "W", 1])
    outputs = [helper.make_tensor_value_info(n, TensorProto.UINT8, ["N", "H", "W", 1]) for n in ("length", "digits")]
    graph = helper.make_graph([helper.make_node("Identity", ["images"], [n]) for n in ("length", "digits")],
                              "dynamic", [images], outputs)
    onnx_lib.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10),
                  folder / "reader.onnx")
    return folder


def test_a_folder_whose_graphs_do_not_fit_is_refused_at_load_naming_the_file(tmp_path):
    cases = [  # (folder, the file named, what the line says)
        (_graph_folder(tmp_path, "other_recipe", info={"recipe": "multi64_grey"}), "info.json",
         "recipe multi64_grey makes [64, 64, 1] crops"),
        (_graph_folder(tmp_path, "rgb_recipe", info={"recipe": "seed32_rgb"}), "info.json",
         "recipe seed32_rgb makes [32, 32, 3] crops"),
        (_graph_folder(tmp_path, "unknown_recipe", info={"recipe": "bogus"}), "info.json", "recipe 'bogus' is none of"),
        (_graph_folder(tmp_path, "other_input", info={"input": {"shape": ["N", 64, 64, 1]}}), "reader.onnx",
         "info.json says it takes ['N', 64, 64, 1]"),
        (_graph_folder(tmp_path, "localiser_as_reader", reader="localiser.onnx", info={"recipe": "scene128_rgb"}),
         "reader.onnx", "not a reader graph: no output length, digits"),
        (_graph_folder(tmp_path, "list_info", info="[1, 2]"), "info.json", "not the info.json of"),
        (_graph_folder(tmp_path, "not_json", info="{"), "info.json", "not JSON"),
        (_dynamic_reader(tmp_path / "dynamic"), "reader.onnx",
         "of fixed H, W, C, got tensor(uint8) ['N', 'H', 'W', 1]"),
    ]
    for folder, file, says in cases:
        with pytest.raises(onnx.OnnxModelError) as e:
            onnx.load_reader(folder)
        line = str(e.value)
        assert line.startswith(f"{folder / file}: ") and says in line and "\n" not in line, (folder.name, line)
    localiser_folder = tmp_path / "reader_as_localiser"
    localiser_folder.mkdir()
    (localiser_folder / "localiser.onnx").write_bytes((onnx.SHIPPED / "reader.onnx").read_bytes())
    with pytest.raises(onnx.OnnxModelError, match="not a localiser graph: no output cells, none"):
        onnx.load_localiser(localiser_folder)
    info_folder = tmp_path / "info_folder"
    info_folder.mkdir()
    (info_folder / "info.json").mkdir()
    with pytest.raises(onnx.OnnxModelError, match=r"info\.json: cannot read it \(Is a directory\)"):
        onnx.load_reader(info_folder)


@pytest.mark.parametrize("name", ["other_recipe", "dynamic"])
def test_predict_names_the_onnx_folder_at_fault_once_not_per_photo(tmp_path, name):
    folder = (_dynamic_reader(tmp_path / name) if name == "dynamic" else
              _graph_folder(tmp_path, name, info={"recipe": "multi64_grey"}))
    result = run_module("svhn_jax.predict", "--backend=onnx", f"--onnx_dir={folder}", "samples/svhn_train_2.png",
                        "samples/svhn_train_3.png", timeout=180)
    assert result.returncode == 2 and result.stdout == "", result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()  # one line for the folder, not one per photo
    assert str(folder) in line and "--box" not in line and "shipped" not in line, line
