"""Imports PP-OCRv6 small's text detector and recogniser (digits only) from the rapidocr wheel.

  python -m svhn_jax.import_ppocr [--out=DIR] [--dtype=float32|float16]

reads ``rapidocr/models/PP-OCRv6_det_small.onnx`` and ``PP-OCRv6_rec_small.onnx`` from the installed
``rapidocr==3.10.0`` distribution (found through its metadata, checked against the wheel's RECORD;
rapidocr's code is never imported), converts each graph and its initializers
(`models.graph_io.from_onnx`), cuts the recogniser's CTC classifier (the MatMul + Add before its
Softmax) to blank + '0'..'9' by the model's own character table (metadata "character"), and writes
``DIR/text_detector/`` and ``DIR/line_reader/`` (default: the package's ``svhn_jax/pretrained``), each
with graph.json, params.msgpack and info.json (source file and sha256, licence, params_sha256, the
characters kept, the preprocessing, this command). A folder is replaced whole, only once the new one
is complete. Needs the ``[peers]`` and ``[onnx]`` extras (rapidocr, onnx); never needed at run time.
A user error (rapidocr missing or another version, a file that differs from the wheel's RECORD) is
one line, ``error: ...``, exit status 1. docs/ppocr.md.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from absl import flags

from svhn_jax.core.cli import cli, run_program
from svhn_jax.core.errors import UserError
from svhn_jax.core.fileio import atomic_write
from svhn_jax.infer.text_models import DETECTOR_DIR, LINE_HEIGHT, MIN_LINE_RATIO
from svhn_jax.models import graph_io

FLAGS = flags.FLAGS
DISTRIBUTION, VERSION = "rapidocr", "3.10.0"
FILES = {"text_detector": "rapidocr/models/PP-OCRv6_det_small.onnx",
         "line_reader": "rapidocr/models/PP-OCRv6_rec_small.onnx"}
DIGITS = "0123456789"
LICENCE = "Apache-2.0"
INSTALL = f"pip install {DISTRIBUTION}=={VERSION} onnx==1.23.2 (the [peers] and [onnx] extras)"
COMMAND = "python -m svhn_jax.import_ppocr"
PREPROCESSING = {
    "text_detector": {
        "input": "x float32 [N, 3, H, W], H and W multiples of 32",
        "channels": "BGR", "normalise": "(x / 255 - 0.5) / 0.5 (mean 0.5, std 0.5 per channel)",
        "resize": "RapidOCR 3.10: longest side cut to 2000 (max_side_len), then the shortest raised to 736 "
                  "(limit_side_len, limit_type min), each side rounded to a multiple of 32; cv2.resize bilinear",
        "helper": "svhn_jax.infer.text_models.detector_input",
    },
    "line_reader": {
        "input": f"x float32 [N, 3, {LINE_HEIGHT}, W]", "channels": "BGR",
        "normalise": "(x / 255 - 0.5) / 0.5",
        "resize": f"height {LINE_HEIGHT} keeping the aspect (width ceil(48 w / h)), cv2.resize bilinear, then "
                  f"zeros (after normalising) on the right to int(48 * max({MIN_LINE_RATIO:.4f}, the batch's "
                  "widest w / h)), as PaddleOCR's resize_norm_img",
        "helper": "svhn_jax.infer.text_models.line_input / line_batch",
    },
}


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program (importing this module defines none)."""
    flags.DEFINE_string("out", str(DETECTOR_DIR.parent), "Folder that receives text_detector/ and line_reader/.")
    flags.DEFINE_enum("dtype", "float32", ["float32", "float16"], "The dtype the parameters are stored in.")


def ppocr_file(role: str) -> tuple[Path, str]:
    """(path on disk, path in the wheel) of `role`'s ONNX file in the installed rapidocr==3.10.0,
    checked against the wheel's RECORD (sha256)."""
    from importlib import metadata
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise UserError(f"{DISTRIBUTION} is not installed: {INSTALL}") from None
    if dist.version != VERSION:
        raise UserError(f"{DISTRIBUTION} {dist.version} is installed; the import reads {VERSION}'s files: {INSTALL}")
    entry = next((f for f in dist.files or [] if str(f) == FILES[role]), None)
    path = Path(dist.locate_file(entry)) if entry is not None else None
    if entry is None or not path.is_file():
        raise UserError(f"{DISTRIBUTION} {VERSION} has no {FILES[role]}; reinstall it: {INSTALL}")
    if entry.hash is not None and entry.hash.mode == "sha256":
        digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
        if digest != entry.hash.value:
            raise UserError(f"{path} differs from the wheel's RECORD; reinstall {DISTRIBUTION}: {INSTALL}")
    return path, FILES[role]


def _producer(graph: dict[str, Any], name: str) -> dict[str, Any]:
    """The node that makes tensor `name`, looking through Identity nodes."""
    by_output = {o: n for n in graph["nodes"] for o in n["outputs"]}
    node = by_output[name]
    while node["op"] == "Identity":
        node = by_output[node["inputs"][0]]
    return node


def _rename_outputs(graph: dict[str, Any], names: dict[str, str]) -> None:
    """Adds Identity nodes giving the tensors `names` (old -> new) their new names as the graph's outputs."""
    for old, new in names.items():
        graph["nodes"].append({"op": "Identity", "name": f"output.{new}", "inputs": [old], "outputs": [new],
                               "attrs": {}})
    graph["outputs"] = list(names.values())


def convert_detector(model: Any) -> tuple[dict, dict[str, np.ndarray], dict[str, Any]]:
    """(graph, params, info entries) of the detector: outputs "probability" (the Sigmoid's) and "logits"."""
    graph, params = graph_io.from_onnx(model)
    sigmoid = _producer(graph, graph["outputs"][0])
    if sigmoid["op"] != "Sigmoid":
        raise UserError(f"the detector ends in {sigmoid['op']}, not the Sigmoid of a DB head")
    _rename_outputs(graph, {graph["outputs"][0]: "probability", sigmoid["inputs"][0]: "logits"})
    return graph, params, {"outputs": {"probability": "float32 [N, 1, H, W]: the DB probability map, 0..1",
                                       "logits": "float32 [N, 1, H, W]: its pre-sigmoid values"}}


def convert_recogniser(model: Any) -> tuple[dict, dict[str, np.ndarray], dict[str, Any]]:
    """(graph, params, info entries) of the recogniser with its classifier cut to blank + the digits:
    outputs "probabilities" (softmax over the 11 classes) and "logits" (the classifier's)."""
    graph, params = graph_io.from_onnx(model)
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        raise UserError("the recogniser has no character table (metadata 'character')")
    table = meta["character"].split("\n")
    softmax = _producer(graph, graph["outputs"][0])
    add = _producer(graph, softmax["inputs"][0])
    matmul = _producer(graph, add["inputs"][0]) if add["op"] == "Add" else None
    if softmax["op"] != "Softmax" or matmul is None or matmul["op"] != "MatMul":
        raise UserError("the recogniser does not end in MatMul, Add, Softmax")
    weight, bias = matmul["inputs"][1], add["inputs"][1]
    classes = params[weight].shape[1]
    if classes not in (len(table) + 1, len(table) + 2) or params[bias].shape != (classes,):
        raise UserError(f"the classifier has {classes} classes for a table of {len(table)} characters")
    space = classes == len(table) + 2  # PaddleOCR appends " " as the last class
    missing = [d for d in DIGITS if table.count(d) != 1]
    if missing:
        raise UserError(f"the character table lacks (or repeats) the digits {missing}")
    keep = [0] + [1 + table.index(d) for d in DIGITS]  # class 0 is CTC's blank, class i + 1 character i
    params[weight] = np.ascontiguousarray(params[weight][:, keep])
    params[bias] = np.ascontiguousarray(params[bias][keep])
    for name in (weight, bias):
        graph["params"][name]["shape"] = list(params[name].shape)
    _rename_outputs(graph, {graph["outputs"][0]: "probabilities", softmax["inputs"][0]: "logits"})
    info = {"characters": DIGITS, "blank": 0,
            "classes": ["blank", *DIGITS], "original_classes": keep,
            "original_table": {"characters": len(table), "classes": classes, "space_class": space},
            "outputs": {"probabilities": "float32 [N, T, 11]: per step (8 px of the line), blank then '0'..'9'",
                        "logits": "float32 [N, T, 11]: the classifier's (CTC logits)"}}
    return graph, params, info


def _write_folder(folder: Path, graph: dict, params: dict[str, np.ndarray], info: dict[str, Any]) -> None:
    """Writes graph.json, params.msgpack and info.json into a fresh folder, then swaps it for `folder`."""
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        atomic_write(tmp / "graph.json", lambda p: p.write_text(graph_io.to_json(graph)))
        atomic_write(tmp / "params.msgpack", lambda p: p.write_bytes(graph_io.params_bytes(params)))
        atomic_write(tmp / "info.json", lambda p: p.write_text(json.dumps(info, indent=1) + "\n"))
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def import_all(out: str | os.PathLike, dtype: str = "float32") -> dict[str, dict[str, Any]]:
    """Converts both models into `out`; returns each folder's info."""
    try:
        import onnx
    except ImportError:
        raise UserError(f"the import reads the ONNX files with onnx, which is not installed: {INSTALL}") from None
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out={out}: cannot create it ({e.strerror})") from None
    infos = {}
    for role, convert in (("text_detector", convert_detector), ("line_reader", convert_recogniser)):
        path, in_wheel = ppocr_file(role)
        model = onnx.load(str(path))
        graph, params, extra = convert(model)
        params = {k: v.astype(dtype) for k, v in params.items()}
        for entry in graph["params"].values():
            entry["dtype"] = dtype
        info = {"model": f"PP-OCRv6 small {'text detector (DB)' if role == 'text_detector' else 'recogniser (CTC)'}"
                         " by PaddleOCR, as shipped in RapidOCR",
                "source": {"distribution": DISTRIBUTION, "version": VERSION,
                           "wheel": f"{DISTRIBUTION}-{VERSION}-py3-none-any.whl",
                           "file": in_wheel, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                           "opset": graph["opset"]},
                "licence": LICENCE, "notice": "svhn_jax/pretrained/NOTICE",
                "params_sha256": graph_io.params_sha256(params), "dtype": dtype,
                "parameters": int(sum(v.size for v in params.values())),
                **extra, "preprocessing": PREPROCESSING[role],
                "command": COMMAND + ("" if dtype == "float32" else f" --dtype={dtype}"),
                "converter": {"onnx": onnx.__version__}}
        _write_folder(out / role, graph, params, info)
        infos[role] = info
    return infos


@cli
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    for role, info in import_all(FLAGS.out, FLAGS.dtype).items():
        folder = Path(FLAGS.out) / role
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(f"{role}: {folder} ({info['parameters']:,} parameters, {size / 1e6:.2f} MB, "
              f"params_sha256 {info['params_sha256'][:12]})")


def run_as_program() -> None:
    """Runs the command (`python -m svhn_jax.import_ppocr`)."""
    define_flags()
    run_program(main)
