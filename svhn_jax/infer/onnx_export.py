"""Exporting the reader and the localiser to ONNX, to run them without JAX (`svhn_jax.infer.onnx`).

`export_all(out, reader_workdir, localiser_workdir)` (the command: ``python -m svhn_jax.export``) writes
``out/reader.onnx``, ``out/localiser.onnx`` and ``out/info.json``, from a user's runs or the shipped
weights (`infer.weights` decides). Each graph holds the model AND the on-device part of its
preprocessing, so it takes exactly what the jitted JAX function of `infer.reader.Reader.load` /
`infer.localiser.Localiser.load` takes:

- reader: uint8 [N, S, S, C] crops as `infer.reader.views` / `preprocess` make them (the shipped
  reader: S = 32, C = 1, the recipe's crop of the box grown by 30 %, Pillow "L" grey, bilinear) ->
  ``length`` float32 [N, 7] and ``digits`` float32 [N, 5, 10] logits (the ``length`` head; a
  ``blank``-head reader has only ``digits`` [N, 5, 11]). Inside the graph: ``model_input.prepare_images``
  in evaluation mode (centre crop when ``crop_size``, / 255, then per-image standardisation with the
  deviation floored at 0.02, or mean subtraction, as the run's config says), then the model.
- localiser: uint8 [N, 128, 128, 3], RGB photos letterboxed by `data.preprocess.letterbox` ->
  ``cells`` float32 [N, 16, 16, 5] and ``none`` float32 [N]. Inside the graph: ``models.localiser.prepare``
  (/ 255, per-image standardisation with the deviation floored at 1/255), then the model.

The batch dimension N is dynamic (named ``N`` in the graph). The exporter is jax2onnx (installed
apart: ``pip install --no-deps jax2onnx==0.17.1``, docs/onnx.md says why), which traces
``model.apply(variables, prepare(x), train=False)`` with the weights as constants. Two
substitutions, each computing the same function (tests/infer/test_onnx.py checks both):

- `graph_prepare`: the same arithmetic as ``prepare_images`` / ``localiser.prepare``, but each image's
  mean and deviation are reduced one axis at a time. onnxruntime's float32 ReduceSum over a whole
  image (49,152 values for the localiser) drifts by ~1e-4 relative, which moved the localiser's
  outputs by up to 8e-4 and the reader's logits by 2.4e-4; reduced per axis, both stay within 1e-4
  of JAX's.
- jax2onnx cannot convert ``jax.image.resize`` with a symbolic batch dimension, so the localiser's
  2x nearest-neighbour upsampling (`models.localiser._up`) is traced as the equal
  broadcast-and-reshape `_up_repeat`.

``info.json`` holds, per graph: the source (shipped name or workdir) and its ``params_sha256``, the
input and output names, shapes and dtypes, the preprocessing the caller must do and the one inside
the graph, the opset, and the exporter's and libraries' versions.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp

from svhn_jax import pretrained
from svhn_jax.core.errors import UserError, one_line
from svhn_jax.core.fileio import atomic_write
from svhn_jax.core.workdir import tree_sha256
from svhn_jax.data.preprocess import get_recipe
from svhn_jax.infer import weights
from svhn_jax.infer.onnx import SHIPPED
from svhn_jax.models import localiser as localiser_module

OPSET = 17   # jax2onnx 0.17 defaults to 23; these graphs need nothing newer (older runtimes can run them)
BATCH = "N"  # the graph's name for the dynamic batch dimension
ROLES = ("reader", "localiser")
MAX_REASON = 200  # characters of a library's message quoted in a one-line error
INSTALL = "pip install -e '.[onnx]' && pip install --no-deps jax2onnx==0.17.1"

READER_CALLER = ("RGB photo -> the box's crop as in training (svhn_jax.infer.reader.preprocess / views: the union "
                 "box grown by 30 %, clipped, Pillow 'L' grey for a grey recipe, bilinear resize to S x S), uint8 NHWC")
LOCALISER_CALLER = ("RGB photo -> svhn_jax.data.preprocess.letterbox(photo, 128): longer side scaled to 128 (Pillow "
                    "bilinear, reducing_gap=3), centred on a canvas of the photo's mean colour, uint8 NHWC; boxes "
                    "come back in the letterboxed frame (undo with the letterbox's scale and offset)")


class ExportError(UserError):
    """The export cannot be made (exporter missing, --out unwritable); one line for the user."""


def _mean_per_image(x: jax.Array) -> jax.Array:
    """Each image's mean over H, W and C [N, 1, 1, 1], reduced one axis at a time (accurate in float32
    on onnxruntime, whose one-pass ReduceSum over a whole image is not)."""
    for axis in (1, 2, 3):
        x = x.mean(axis, keepdims=True)
    return x


def _standardise(x: jax.Array, floor: float) -> jax.Array:
    """(x - mean) / max(std, floor) per image, as ``augment.standardize`` and ``localiser.prepare``."""
    centred = x - _mean_per_image(x)
    return centred / jnp.maximum(jnp.sqrt(_mean_per_image(centred * centred)), floor)


READER_STD_FLOOR = 0.02            # augment.standardize's
LOCALISER_STD_FLOOR = 1.0 / 255.0  # models.localiser.prepare's


def graph_prepare(config: Any) -> Callable[[jax.Array], jax.Array]:
    """uint8 [N, S, S, C] -> the model's float32 input: ``model_input.prepare_images(x, config)`` in
    evaluation mode for a reader, ``models.localiser.prepare`` for the localiser (tests check they agree)."""
    if config.model == "localiser":
        return lambda images: _standardise(images.astype(jnp.float32) / 255.0, LOCALISER_STD_FLOOR)

    def prepare(images: jax.Array) -> jax.Array:
        x = images.astype(jnp.float32) / 255.0
        if config.crop_size:
            size, (h, w) = config.crop_size, x.shape[1:3]
            top, left = (h - size) // 2, (w - size) // 2
            x = x[:, top:top + size, left:left + size, :]
        return _standardise(x, READER_STD_FLOOR) if config.standardize else x - _mean_per_image(x)

    return prepare


def _up_repeat(x: jax.Array) -> jax.Array:
    """`models.localiser._up` (2x nearest-neighbour upsampling of NHWC) as a broadcast and a reshape."""
    b, h, w, c = x.shape
    return jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c)).reshape(b, 2 * h, 2 * w, c)


@contextlib.contextmanager
def _traceable_localiser() -> Iterator[None]:
    """The localiser's upsampling swapped for `_up_repeat` while jax2onnx traces it (then restored)."""
    original = localiser_module._up
    localiser_module._up = _up_repeat
    try:
        yield
    finally:
        localiser_module._up = original


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """jax2onnx logs a traceback per optional plugin it cannot import (equinox, dm_pix: not needed here)
    and onnx_ir a warning per untyped shape constant; neither says anything about this export."""
    loggers = [logging.getLogger(n) for n in ("jax2onnx", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def exporter() -> Callable:
    """jax2onnx's `to_onnx`, or `ExportError` saying what to install."""
    try:
        with _quiet_exporter():
            from jax2onnx import to_onnx
    except ImportError as e:
        missing = e.name or "jax2onnx"
        how = ("pip install --no-deps jax2onnx==0.17.1" if missing.split(".")[0] == "jax2onnx"
               else "pip install -e '.[onnx]' (then: pip install --no-deps jax2onnx==0.17.1)")
        raise ExportError(f"exporting to ONNX needs {missing.split('.')[0]}, which is not installed: {how}") from None
    return to_onnx


def writable_folder(out: str | os.PathLike) -> Path:
    """`out` created if missing and checked writable (a file written and removed), or `ExportError`."""
    out = Path(out).expanduser()
    probe = out / f".svhn_jax_export_probe-{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ExportError(f"--out={out}: cannot write there ({e.strerror or e})") from None
    return out


def _record(info_path: Path, overwrite: bool) -> dict[str, Any]:
    """The export record already in the folder: {} when there is none (or, with `overwrite`, when the file
    there is not an export's record); `ExportError` for something that is not a regular file, and for a
    file that is not an export's record unless `overwrite` (it is the user's: never replaced unasked)."""
    if not info_path.exists() and not info_path.is_symlink():
        return {}
    if not info_path.is_file():
        raise ExportError(f"{info_path}: not a regular file, so not an export's record; remove it or choose "
                          "another --out")
    try:
        info = json.loads(info_path.read_text())
        why = "" if isinstance(info, dict) and all(isinstance(v, dict) for v in info.values()) else \
            f"a JSON {type(info).__name__}, not an object of graph entries"
    except (OSError, ValueError) as e:
        info, why = None, f"{type(e).__name__}: {one_line(e)}"
    if not why:
        return info
    if overwrite:
        return {}
    raise ExportError(f"{info_path}: not an export's record ({why[:MAX_REASON]}); it is kept: remove it, give "
                      "--overwrite to replace it, or choose another --out")


def _ours(record: dict[str, Any], path: Path) -> bool:
    """Whether `record` (the folder's info.json) says this export wrote the graph `path` as it is now."""
    role = path.stem
    entry = record.get(role)
    return (isinstance(entry, dict) and entry.get("file") == path.name and entry.get("exporter") == "jax2onnx"
            and entry.get("bytes") == path.stat().st_size)


def check_out(out: str | os.PathLike, roles: tuple[str, ...] | list[str], overwrite: bool = False) -> Path:
    """`out` checked before anything is loaded or written: writable (`writable_folder`), not the package's
    shipped graphs, and holding no ``<role>.onnx`` nor ``info.json`` this export did not write, unless
    `overwrite` (what is not a regular file there is refused even then). Each refusal is one line that
    says how to go on."""
    out = writable_folder(out)
    if SHIPPED.exists() and out.resolve() == SHIPPED.resolve() and not overwrite:
        raise ExportError(f"--out={out} is the package's shipped graphs (svhn_jax/pretrained/onnx): they are kept; "
                          "give --overwrite to replace them, or choose another --out")
    record = _record(out / "info.json", overwrite)
    for role in roles:
        path = out / f"{role}.onnx"
        if not path.exists() and not path.is_symlink():
            continue
        if not path.is_file():
            raise ExportError(f"{path}: not a regular file; remove it or choose another --out")
        if not overwrite and not _ours(record, path):
            raise ExportError(f"{path}: not written by this export (its info.json does not record it): it is "
                              "kept; give --overwrite to replace it, or choose another --out")
    return out


def load_source(role: str, workdir: str | os.PathLike | None = None) -> tuple[Any, Any, dict[str, Any], str]:
    """(config, model, variables on the host, source): `workdir`'s run of that role (`infer.weights`
    refuses another kind in one line), or the shipped one when `workdir` is None or ''."""
    try:
        config, model, variables = weights.load(role, workdir)
    except UserError:
        raise
    except Exception as e:  # a run's broken config.json or checkpoint: one line naming it, never a traceback
        if not workdir:
            raise
        flag = "--workdir" if role == "reader" else "--localiser"
        reason = one_line(e)
        reason = reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + " ..."
        raise ExportError(f"{flag}={workdir}: cannot load a trained run ({type(e).__name__}: {reason})") from None
    source = str(Path(workdir).resolve()) if workdir else f"pretrained:{role}"
    return config, model, jax.device_get(variables), source


def graph_function(config: Any, model: Any, variables: dict[str, Any]) -> tuple[str, Callable, tuple[int, ...],
                                                                                 list[str]]:
    """(role, uint8 [N, S, S, C] -> tuple of outputs, input shape without N, output names): the function the
    graph computes, `Reader.load`'s / `Localiser.load`'s jitted one up to the logits."""
    size, grey = get_recipe(config.recipe)
    shape = (size, size, 1 if grey else 3)
    role = "localiser" if config.model == "localiser" else "reader"
    if role == "localiser":
        names = ["cells", "none"]
    else:
        names = ["length", "digits"] if config.head == "length" else ["digits"]
    prepare = graph_prepare(config)

    def fn(images: jax.Array) -> tuple[jax.Array, ...]:
        outputs = model.apply(variables, prepare(images), train=False)
        return tuple(outputs[n] for n in names)

    return role, fn, shape, names


def _versions() -> dict[str, str]:
    from importlib.metadata import version
    return {p: version(p) for p in ("jax2onnx", "onnx", "onnx-ir", "jax", "flax")}


def _reader_graph_preprocessing(config: Any) -> str:
    crop = f"centre crop to {config.crop_size}; " if config.crop_size else ""
    norm = "per image (x - mean) / max(std, 0.02)" if config.standardize else "per image x - mean"
    return f"{crop}x / 255; {norm} over H, W, C (svhn_jax.data.model_input.prepare_images, evaluation mode)"


def export_model(role: str, workdir: str | os.PathLike | None, out_dir: str | os.PathLike,
                 opset: int = OPSET, overwrite: bool = False) -> dict[str, Any]:
    """Exports `workdir`'s `role` ("reader" or "localiser"; the shipped one when `workdir` is None or '')
    to ``out_dir/<role>.onnx`` and records it in ``out_dir/info.json`` (other roles' entries kept);
    returns its entry. What this export did not write is replaced only with `overwrite` (`check_out`)."""
    exporter()
    check_out(out_dir, [role], overwrite)
    return _export_loaded(load_source(role, workdir), out_dir, opset, overwrite)


def _export_loaded(loaded: tuple[Any, Any, dict[str, Any], str], out_dir: str | os.PathLike,
                   opset: int = OPSET, overwrite: bool = False) -> dict[str, Any]:
    to_onnx = exporter()
    out = writable_folder(out_dir)
    config, model, variables, source = loaded
    role, fn, shape, names = graph_function(config, model, variables)
    sha = tree_sha256(variables["params"])
    if source.startswith("pretrained:"):  # the shipped weights are the ones their record names
        recorded = json.loads((pretrained.folder(role) / "info.json").read_text())["params_sha256"]
        if recorded != sha:
            raise ExportError(f"{source}: its parameters' digest {sha} is not its info.json's {recorded}")
    path = out / f"{role}.onnx"
    check_out(out, [role], overwrite)  # again just before writing: nothing of the user's replaced unasked
    spec = jax.ShapeDtypeStruct((BATCH, *shape), jnp.uint8)
    start = time.perf_counter()
    with _quiet_exporter(), _traceable_localiser() if role == "localiser" else contextlib.nullcontext():
        proto = to_onnx(fn, [spec], model_name=f"svhn_jax_{role}", opset=opset, input_names=["images"],
                        output_names=names)
    try:
        atomic_write(path, lambda p: p.write_bytes(proto.SerializeToString()))
    except OSError as e:
        raise ExportError(f"cannot write {path} ({e.strerror or e})") from None
    seconds = time.perf_counter() - start
    out_shapes = jax.eval_shape(fn, jax.ShapeDtypeStruct((1, *shape), jnp.uint8))
    entry = {
        "file": path.name,
        "source": source,
        "params_sha256": sha,
        "model": config.model,
        "recipe": config.recipe,
        "input": {"name": "images", "dtype": "uint8", "shape": [BATCH, *shape], "layout": "NHWC"},
        "outputs": {n: {"dtype": str(o.dtype), "shape": [BATCH, *o.shape[1:]]} for n, o in zip(names, out_shapes)},
        "caller_preprocessing": LOCALISER_CALLER if role == "localiser" else READER_CALLER,
        "graph_preprocessing": (
            "x / 255; per image (x - mean) / max(std, 1/255) over H, W, C (svhn_jax.models.localiser.prepare)"
            if role == "localiser" else _reader_graph_preprocessing(config)),
        "opset": opset,
        "ir_version": proto.ir_version,
        "exporter": "jax2onnx",
        "versions": _versions(),
        "export_seconds": round(seconds, 2),
        "bytes": path.stat().st_size,
    }
    info_path = out / "info.json"
    info = _record(info_path, overwrite)
    info[role] = entry
    try:
        atomic_write(info_path, lambda p: p.write_text(json.dumps(info, indent=2) + "\n"))
    except OSError as e:
        raise ExportError(f"cannot write {info_path} ({e.strerror or e})") from None
    return entry


def export_all(out_dir: str | os.PathLike, reader: str | os.PathLike | None = None,
               localiser: str | os.PathLike | None = None, with_localiser: bool = True,
               overwrite: bool = False) -> dict[str, Any]:
    """The reader of run `reader` and the localiser of run `localiser` (None or '': the shipped ones;
    `with_localiser` False: the reader only) -> their info.json entries. A graph or info.json in `out_dir`
    that this export did not write, and the shipped graphs, are replaced only with `overwrite`."""
    exporter()  # before loading any weights: the missing exporter is the first thing to say
    check_out(out_dir, ROLES if with_localiser else ("reader",), overwrite)
    # Both runs loaded (and their kinds checked) before anything is written.
    sources = {"reader": load_source("reader", reader)}
    if with_localiser:
        sources["localiser"] = load_source("localiser", localiser)
    return {role: _export_loaded(loaded, out_dir, overwrite=overwrite) for role, loaded in sources.items()}
