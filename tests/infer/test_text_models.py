"""The imported PP-OCRv6 small detector and digit line reader (`infer.text_models`, `infer.onnx_text`).

The milestone of docs/ppocr.md: on real photos (samples/) the JAX detector's probability map and the
line reader's probabilities equal onnxruntime's on the original ONNX files of the rapidocr 3.10 wheel
(max abs difference <= 1e-4): the whole recogniser over its 18,710 classes, and the cut reader against
the softmax over the kept columns of onnxruntime's own pre-softmax logits. The shipped weights are a
fresh import, the JAX loaders import neither onnx, onnxruntime nor rapidocr, the ONNX backend imports
no JAX, the preprocessing is RapidOCR's own, and a CTC loss trains the reader. Tests that need the
original files skip when rapidocr is not installed.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import REPO, module_env, run_module
from PIL import Image

from svhn_jax.infer import text_models
from svhn_jax.infer.text_models import LineReader, TextDetector, TextModelError
from svhn_jax.models import graph_io

SAMPLES = REPO / "samples"
TOLERANCE = 1e-4
needs_rapidocr = pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None or
                                    importlib.util.find_spec("onnxruntime") is None,
                                    reason="rapidocr==3.10.0 (the [peers] extra) is not installed")


def photos() -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """samples/*.png as RGB arrays, each with its labelled number's box."""
    with open(SAMPLES / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    return [(np.asarray(Image.open(SAMPLES / r["file"]).convert("RGB")), tuple(int(r[k]) for k in "xywh"))
            for r in rows]


def line_crops() -> list[np.ndarray]:
    return [photo[y:y + h, x:x + w] for photo, (x, y, w, h) in photos()]


def detector_batch() -> np.ndarray:
    """The samples resized to one 256 x 384 batch (one compiled program)."""
    import cv2
    return np.stack([text_models.normalise(cv2.resize(p, (384, 256))) for p, _ in photos()])


@pytest.fixture(scope="module")
def detector():
    return TextDetector.load()


@pytest.fixture(scope="module")
def reader():
    return LineReader.load()


def original_session(role: str, extra_outputs: tuple[str, ...] = ()):
    """onnxruntime on the wheel's own ONNX file, with `extra_outputs` exposed."""
    import onnx
    import onnxruntime

    from svhn_jax.cli.import_ppocr import ppocr_file
    model = onnx.load(str(ppocr_file(role)[0]))
    for name in extra_outputs:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model, onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@needs_rapidocr
def test_detector_equals_onnxruntime_on_real_photos(detector):
    _, session = original_session("text_detector")
    batch = detector_batch()
    want = session.run(None, {"x": batch})[0]
    got = detector(batch)
    assert got.shape == want.shape == (len(batch), 1, 256, 384)
    assert np.abs(got - want).max() <= TOLERANCE
    assert want.max() > 0.9  # the photos have text: the comparison is not of empty maps
    one, _ = detector.preprocess(photos()[0][0], limit_side_len=160)  # the photo's own aspect
    assert np.abs(detector(one) - session.run(None, {"x": one})[0]).max() <= TOLERANCE


@needs_rapidocr
def test_whole_recogniser_equals_onnxruntime_on_real_lines():
    from svhn_jax.models import onnx_graph
    model, session = original_session("line_reader")
    graph, params = graph_io.from_onnx(model)
    lines = LineReader.batch(line_crops())
    want = session.run(None, {"x": lines})[0]
    got = onnx_graph.apply(onnx_graph.Graph.from_dict(graph), params, lines)[graph["outputs"][0]]
    assert got.shape == want.shape and want.shape[2] == 18710
    assert np.abs(np.asarray(got) - want).max() <= TOLERANCE


@needs_rapidocr
def test_digit_reader_is_the_softmax_over_the_kept_columns_of_onnxruntimes_logits(reader):
    shipped = graph_io.read_json(text_models.LINE_READER_DIR / "graph.json")
    logits_name = next(n["inputs"][0] for n in shipped["nodes"] if n["outputs"] == ["logits"])
    model, session = original_session("line_reader", (logits_name,))
    table = {p.key: p.value for p in model.metadata_props}["character"].split("\n")
    keep = reader.info["original_classes"]
    assert keep[0] == 0 and [table[k - 1] for k in keep[1:]] == list("0123456789") == list(reader.characters)
    lines = LineReader.batch(line_crops())
    _, logits = session.run(None, {"x": lines})
    cut = logits[:, :, keep]
    want = np.exp(cut - cut.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    got = reader(lines)
    assert got.shape == want.shape == (len(lines), text_models.line_steps(lines.shape[3]), 11)
    assert np.abs(got - want).max() <= TOLERANCE
    assert (got.argmax(-1) > 0).any()  # digits are read, not only blanks


def test_onnx_backend_gives_the_jax_numbers(detector, reader):
    pytest.importorskip("onnxruntime")
    from svhn_jax.infer import onnx_text
    batch = detector_batch()[:2]
    assert np.abs(onnx_text.load_detector()(batch) - detector(batch)).max() <= TOLERANCE
    lines = LineReader.batch(line_crops()[:3])
    onnx_reader = onnx_text.load_line_reader()
    assert onnx_reader.backend == "onnx" and onnx_reader.characters == "0123456789"
    assert np.abs(onnx_reader(lines) - reader(lines)).max() <= TOLERANCE


@needs_rapidocr
def test_the_shipped_weights_are_a_fresh_import(tmp_path):
    proc = run_module("svhn_jax.import_ppocr", f"--out={tmp_path}", timeout=300)
    assert proc.returncode == 0, proc.stderr
    for role in ("text_detector", "line_reader"):
        shipped, fresh = text_models.SHIPPED / role, tmp_path / role
        info = json.loads((shipped / "info.json").read_text())
        assert json.loads((fresh / "info.json").read_text())["params_sha256"] == info["params_sha256"]
        assert graph_io.params_sha256(graph_io.read_params(shipped / "params.msgpack")) == info["params_sha256"]
        assert (fresh / "graph.json").read_bytes() == (shipped / "graph.json").read_bytes()
        assert (fresh / "params.msgpack").read_bytes() == (shipped / "params.msgpack").read_bytes()
        assert sorted(p.name for p in fresh.iterdir()) == ["graph.json", "info.json", "params.msgpack"]
        assert info["licence"] == "Apache-2.0" and info["source"]["version"] == "3.10.0"
    assert "svhn_jax.import_ppocr" in proc.stdout or "line_reader:" in proc.stdout


def test_shipped_weights_stay_within_40_mb_with_their_notice():
    total = sum(p.stat().st_size for p in text_models.SHIPPED.rglob("*") if p.is_file() and p.suffix != ".py")
    assert total <= 40e6
    notice = (text_models.SHIPPED / "NOTICE").read_text()
    assert "Apache License, Version 2.0" in notice and "PaddleOCR" in notice and "RapidOCR" in notice
    assert "Apache License" in (text_models.SHIPPED / "LICENSE-Apache-2.0").read_text()


def test_importer_refuses_another_rapidocr_in_one_line(tmp_path):
    """A rapidocr of another version (a fake distribution on the path) -> one line, exit 1, nothing written."""
    site = tmp_path / "site"
    (site / "rapidocr-9.9.dist-info").mkdir(parents=True)
    (site / "rapidocr-9.9.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: rapidocr\nVersion: 9.9\n")
    out = tmp_path / "out"
    proc = run_module("svhn_jax.import_ppocr", f"--out={out}", env={"PYTHONPATH": str(site)})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: rapidocr 9.9 is installed")
    assert "Traceback" not in proc.stderr and not (out / "line_reader").exists()


NO_ONNX = """
import sys, numpy as np
from svhn_jax.infer.text_models import TextDetector, LineReader
d, r = TextDetector.load(), LineReader.load()
assert d(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 1, 64, 64)
assert r(np.zeros((1, 3, 48, 64), np.float32)).shape == (1, 8, 11)
print(sorted(m for m in ("onnx", "onnxruntime", "rapidocr") if m in sys.modules))
"""
NO_JAX = """
import sys, numpy as np
from svhn_jax.infer import onnx_text
d, r = onnx_text.load_detector(), onnx_text.load_line_reader()
assert d(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 1, 64, 64)
assert r(np.zeros((1, 3, 48, 64), np.float32)).shape == (1, 8, 11)
print(sorted(m for m in ("jax", "jaxlib", "flax", "rapidocr") if m in sys.modules))
"""


def test_jax_loaders_import_neither_onnx_nor_onnxruntime_nor_rapidocr():
    proc = subprocess.run([sys.executable, "-c", NO_ONNX], cwd=REPO, env=module_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_onnx_backend_imports_no_jax():
    pytest.importorskip("onnxruntime")
    proc = subprocess.run([sys.executable, "-c", NO_JAX], cwd=REPO, env=module_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_ctc_gradients_are_finite_and_one_optax_step_lowers_the_loss(reader):
    import jax
    import jax.numpy as jnp
    import optax

    from svhn_jax.models import onnx_graph
    photo, (x, y, w, h) = photos()[4]  # synthetic_1.png: 19
    lines = LineReader.batch([photo[y:y + h, x:x + w]])
    labels = jnp.array([[1 + 1, 9 + 1]])  # class i + 1 is digit i

    def loss(params):
        logits = onnx_graph.apply(reader.graph, params, lines, outputs=("logits",))["logits"]
        return optax.ctc_loss(logits, jnp.zeros(logits.shape[:2]), labels, jnp.zeros(labels.shape)).mean()

    value, grads = jax.value_and_grad(loss)(reader.params)
    assert set(grads) == set(reader.params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    # BatchNorm's running statistics stay as imported: Adam would push tiny variances below zero (NaN).
    mask = onnx_graph.trainable(reader.graph, reader.params)
    frozen = {name for name, train in mask.items() if not train}
    assert frozen == onnx_graph.statistics(reader.graph) and len(frozen) == 6  # 3 BatchNorms left unfused
    tx = optax.multi_transform({True: optax.adam(1e-4), False: optax.set_to_zero()}, mask)
    updates, _ = tx.update(grads, tx.init(reader.params), reader.params)
    stepped = optax.apply_updates(reader.params, updates)
    assert all(np.array_equal(stepped[name], reader.params[name]) for name in frozen)
    after = loss(stepped)
    assert np.isfinite(float(value)) and float(after) < float(value)


@needs_rapidocr
def test_preprocessing_is_rapidocrs_own():
    from rapidocr.ch_ppocr_det.utils import DetPreProcess
    from rapidocr.ch_ppocr_rec.main import TextRecognizer
    rapid_det = DetPreProcess(736, "min", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    for photo, _ in photos()[:3]:
        ours, (sy, sx) = TextDetector.preprocess(photo, max_side_len=None)
        theirs = rapid_det(np.ascontiguousarray(photo[:, :, ::-1]))  # RapidOCR reads BGR
        assert ours.shape == theirs.shape and np.abs(ours - theirs).max() < 1e-6
        assert (sy, sx) == (ours.shape[2] / photo.shape[0], ours.shape[3] / photo.shape[1])
    crops = line_crops()[:4]
    ratio = max(6.666666666666667, *(c.shape[1] / c.shape[0] for c in crops))
    rec = types.SimpleNamespace(rec_image_shape=[3, 48, 320])
    theirs = np.stack([TextRecognizer.resize_norm_img(rec, np.ascontiguousarray(c[:, :, ::-1]), ratio)
                       for c in crops])
    ours = LineReader.batch(crops)
    assert ours.shape == theirs.shape and np.abs(ours - theirs).max() < 1e-6
    from rapidocr.utils.process_img import reduce_max_side  # RapidOCR's 2000-pixel cap comes first
    capped = reduce_max_side(np.zeros((3000, 4000, 3), np.uint8), 2000)[0].shape[:2]
    assert text_models.detector_size(3000, 4000) == [capped, capped] == [(1504, 1984)] * 2


def test_bad_inputs_are_one_line_errors(detector, reader):
    with pytest.raises(TextModelError, match="multiples of 32"):
        detector(np.zeros((1, 3, 50, 64), np.float32))
    with pytest.raises(TextModelError, match="height 48"):
        reader(np.zeros((1, 3, 40, 64), np.float32))
    with pytest.raises(TextModelError, match="RGB uint8"):
        LineReader.preprocess(np.zeros((10, 20), np.uint8))
    assert reader(np.zeros((0, 3, 48, 64), np.float32)).shape == (0, 8, 11)
