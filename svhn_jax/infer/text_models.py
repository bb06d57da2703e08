"""The text detector and the digit line reader imported from PP-OCRv6 small (docs/ppocr.md).

`TextDetector` maps normalised photos to DB's text probability map; `LineReader` maps line crops to
CTC probabilities over blank and the ten digits. Both run an imported graph
(`models.onnx_graph`, weights in ``svhn_jax/pretrained/text_detector`` and ``.../line_reader``, made
by ``python -m svhn_jax.import_ppocr``) with JAX (`load`), or with onnxruntime
(`svhn_jax.infer.onnx_text.load_detector` / `load_line_reader`: the same call, the same numbers to
float rounding). This module imports neither JAX nor onnxruntime itself; `load` imports JAX.

  detector = TextDetector.load()                     # the shipped weights; or TextDetector.load(folder)
  batch, (sy, sx) = detector.preprocess(photo)       # RGB uint8 [H, W, 3] -> float32 [1, 3, H', W']
  prob = detector(batch)                             # [1, 1, H', W'] in 0..1; photo y = map y / sy
  reader = LineReader.load()
  lines = reader.batch([crop1, crop2])               # RGB uint8 crops -> float32 [2, 3, 48, W]
  probs = reader(lines)                              # [2, T, 11]: blank, '0', ..., '9'; T ~ W / 8

The preprocessing is RapidOCR 3.10's (the weights' own: BGR channels, (x / 255 - 0.5) / 0.5):
the detector sees the photo with its longest side cut to `max_side_len` and its shortest raised to
`limit_side_len`, each side a multiple of 32 (cv2's bilinear resize); a line is resized to height 48
keeping its aspect (width rounded up) and padded on the right with zeros (after normalisation) to
``int(48 * max(320 / 48, the widest line's width / height))``, as PaddleOCR pads a batch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from svhn_jax.core.errors import UserError

SHIPPED = Path(__file__).resolve().parents[1] / "pretrained"
DETECTOR_DIR = SHIPPED / "text_detector"
LINE_READER_DIR = SHIPPED / "line_reader"
LINE_HEIGHT = 48
MIN_LINE_RATIO = 320 / 48  # PaddleOCR's rec_img_shape [3, 48, 320]: the narrowest padded width
STRIDE = 32                # the detector's sides are multiples of this


class TextModelError(UserError):
    """Text model weights that cannot be read, or an input they cannot take; the message is one line."""


# --- preprocessing (numpy and OpenCV) ---------------------------------------------------------

def normalise(image: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> float32 [3, H, W]: BGR, (x / 255 - 0.5) / 0.5, as the weights were trained."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise TextModelError(f"expected an RGB image [H, W, 3], got shape {list(image.shape)}")
    bgr = image[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(((bgr / 255.0 - 0.5) / 0.5).transpose(2, 0, 1), dtype=np.float32)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2
    return cv2.resize(image, (int(width), int(height)))


def _round32(v: float) -> int:
    return int(round(v / STRIDE) * STRIDE)


def detector_size(height: int, width: int, limit_side_len: int = 736, limit_type: str = "min",
                  max_side_len: int | None = 2000) -> list[tuple[int, int]]:
    """The (height, width) resizes RapidOCR 3.10 applies to a photo before its detector, in order:
    cap the longest side at `max_side_len` (``resize_image_within_bounds``; None: no cap), then
    DetPreProcess (``limit_type`` "min": raise the shortest side to `limit_side_len`; "max": cut the
    longest to it), each to multiples of 32."""
    steps = []
    h, w = height, width
    if max_side_len is not None and max(h, w) > max_side_len:
        ratio = max_side_len / (h if h > w else w)
        h, w = _round32(int(h * ratio)), _round32(int(w * ratio))
        steps.append((h, w))
    if limit_type == "min":
        ratio = limit_side_len / (h if h < w else w) if min(h, w) < limit_side_len else 1.0
    elif limit_type == "max":
        ratio = limit_side_len / (h if h > w else w) if max(h, w) > limit_side_len else 1.0
    else:
        raise TextModelError(f"limit_type {limit_type!r}: choose min or max")
    h, w = _round32(int(h * ratio)), _round32(int(w * ratio))
    if h <= 0 or w <= 0:
        raise TextModelError(f"a {width}x{height} photo is too small for the text detector")
    steps.append((h, w))
    return steps


def detector_input(photo: np.ndarray, limit_side_len: int = 736, limit_type: str = "min",
                   max_side_len: int | None = 2000) -> tuple[np.ndarray, tuple[float, float]]:
    """RGB uint8 photo [H, W, 3] -> (float32 [1, 3, H', W'] for `TextDetector`, (H' / H, W' / W)),
    resized as `detector_size` says (RapidOCR 3.10's steps, each a cv2 bilinear resize)."""
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise TextModelError(f"expected an RGB uint8 photo [H, W, 3], got {photo.dtype} {list(photo.shape)}")
    h, w = photo.shape[:2]
    image = photo
    for nh, nw in detector_size(h, w, limit_side_len, limit_type, max_side_len):
        image = _resize(image, nw, nh)
    return normalise(image)[None], (image.shape[0] / h, image.shape[1] / w)


def line_width(crop_shape: tuple[int, ...], max_wh_ratio: float = MIN_LINE_RATIO) -> int:
    """The padded width of a line batch whose widest line has width / height `max_wh_ratio`."""
    return int(LINE_HEIGHT * max(MIN_LINE_RATIO, max_wh_ratio, crop_shape[1] / crop_shape[0]))


def line_input(crop: np.ndarray, width: int | None = None) -> np.ndarray:
    """RGB uint8 line crop [h, w, 3] -> float32 [3, 48, width] for `LineReader` (PaddleOCR's
    ``resize_norm_img``): resized to height 48 and width min(ceil(48 w / h), width), normalised, then
    zeros on the right. `width` None: the crop's own `line_width`."""
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8 or min(crop.shape[:2]) < 1:
        raise TextModelError(f"expected an RGB uint8 line crop [h, w, 3], got {crop.dtype} {list(crop.shape)}")
    width = line_width(crop.shape) if width is None else int(width)
    resized_w = min(width, int(math.ceil(LINE_HEIGHT * crop.shape[1] / crop.shape[0])))
    out = np.zeros((3, LINE_HEIGHT, width), np.float32)
    out[:, :, :resized_w] = normalise(_resize(crop, resized_w, LINE_HEIGHT))
    return out


def line_batch(crops: list[np.ndarray]) -> np.ndarray:
    """RGB uint8 line crops -> float32 [N, 3, 48, W], each padded to the widest's `line_width` (one
    PaddleOCR batch). The widths, and so the outputs, depend on the batch: read lines of similar
    aspect together, as PaddleOCR does (it sorts them by aspect, six a batch)."""
    if not crops:
        return np.zeros((0, 3, LINE_HEIGHT, line_width((1, 1))), np.float32)
    width = max(line_width(np.shape(c)) for c in crops)
    return np.stack([line_input(c, width) for c in crops])


# --- the models -------------------------------------------------------------------------------

def line_steps(width: int) -> int:
    """The line reader's number of CTC steps T for lines `width` pixels wide (two stride-2 convolutions,
    padded, then a stride-2 pool: about one step per 8 pixels)."""
    return math.ceil(math.ceil(width / 2) / 2) // 2


def read_info(folder: str | os.PathLike) -> dict[str, Any]:
    """A weights folder's info.json."""
    path = Path(folder) / "info.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TextModelError(f"{path}: cannot read the weights' info ({e}); make them with "
                             "python -m svhn_jax.import_ppocr") from None


def load_graph(folder: str | os.PathLike) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(`onnx_graph.Graph`, params {name: jax array, float32}, info) of a weights folder (JAX), to run
    or to train: ``onnx_graph.apply(graph, params, x, outputs=("logits",))`` gives the line reader's
    CTC logits, the detector's pre-sigmoid map."""
    import jax.numpy as jnp

    from svhn_jax.models import graph_io, onnx_graph
    folder = Path(folder)
    info = read_info(folder)
    try:
        graph = onnx_graph.Graph.load(folder / "graph.json")
        params = graph_io.read_params(folder / "params.msgpack")
        graph_io.check_params(graph.to_dict(), params)
    except (graph_io.GraphFileError, onnx_graph.GraphError) as e:
        raise TextModelError(f"{folder}: {e}") from None
    return graph, {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}, info


def _jax_run(folder: Path, output: str, cache_dir: str) -> tuple[Callable[[np.ndarray], np.ndarray], dict, Any, dict]:
    from svhn_jax.core import compilation_cache
    from svhn_jax.models import onnx_graph
    if cache_dir != "none":
        compilation_cache.enable(cache_dir or None)
    graph, params, info = load_graph(folder)

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(onnx_graph.apply(graph, params, x, outputs=(output,))[output])
    return run, info, graph, params


def _check_batch(x: Any, what: str, height: int | None = None) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise TextModelError(f"{what}: expected float32 [N, 3, H, W], got shape {list(x.shape)}")
    if height is not None and x.shape[2] != height:
        raise TextModelError(f"{what}: expected lines of height {height}, got {x.shape[2]}")
    return x


@dataclasses.dataclass
class TextDetector:
    """PP-OCRv6 small's DB text detector: normalised photos -> the probability that each pixel is text."""

    run: Callable[[np.ndarray], np.ndarray]  # float32 [N, 3, H, W] -> float32 [N, 1, H, W]
    info: dict[str, Any]
    backend: str = "jax"
    graph: Any = None                        # JAX: the `onnx_graph.Graph` and its params (to train)
    params: dict[str, Any] | None = None

    preprocess = staticmethod(detector_input)

    @classmethod
    def load(cls, folder: str | os.PathLike | None = None, cache_dir: str = "") -> "TextDetector":
        """The detector of `folder` (default: the shipped one) in JAX; its compiled programs (one per
        input shape) kept in the persistent compilation cache (`cache_dir` "": the default folder,
        "none": off)."""
        run, info, graph, params = _jax_run(Path(folder or DETECTOR_DIR), "probability", cache_dir)
        return cls(run=run, info=info, graph=graph, params=params)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, 3, H, W] (`preprocess`'s; H and W multiples of 32) -> float32 [N, 1, H, W] in 0..1."""
        images = _check_batch(images, "text detector")
        if images.shape[2] % STRIDE or images.shape[3] % STRIDE:
            raise TextModelError(f"text detector: the sides must be multiples of {STRIDE}, got "
                                 f"{images.shape[2]}x{images.shape[3]}")
        if len(images) == 0:
            return np.zeros((0, 1, *images.shape[2:]), np.float32)
        return np.asarray(self.run(images), np.float32)


@dataclasses.dataclass
class LineReader:
    """PP-OCRv6 small's recogniser cut to the digits: lines -> CTC probabilities per step over
    (blank, '0', ..., '9'); a step is 8 pixels of the 48-pixel-high line, no limit on length."""

    run: Callable[[np.ndarray], np.ndarray]  # float32 [N, 3, 48, W] -> float32 [N, T, 11]
    info: dict[str, Any]
    backend: str = "jax"
    graph: Any = None
    params: dict[str, Any] | None = None

    preprocess = staticmethod(line_input)
    batch = staticmethod(line_batch)

    @property
    def characters(self) -> str:
        """The characters of classes 1, 2, ... (class 0 is CTC's blank): "0123456789"."""
        return self.info["characters"]

    @classmethod
    def load(cls, folder: str | os.PathLike | None = None, cache_dir: str = "") -> "LineReader":
        """The line reader of `folder` (default: the shipped one) in JAX; compiled programs (one per
        batch shape) kept in the persistent compilation cache (`cache_dir` as `TextDetector.load`)."""
        run, info, graph, params = _jax_run(Path(folder or LINE_READER_DIR), "probabilities", cache_dir)
        return cls(run=run, info=info, graph=graph, params=params)

    def __call__(self, lines: np.ndarray) -> np.ndarray:
        """float32 [N, 3, 48, W] (`batch`'s or `preprocess`'s) -> float32 [N, T, 11], T = `line_steps`(W)
        (W // 8 for W a multiple of 8)."""
        lines = _check_batch(lines, "line reader", LINE_HEIGHT)
        if len(lines) == 0:
            return np.zeros((0, line_steps(lines.shape[3]), 1 + len(self.characters)), np.float32)
        return np.asarray(self.run(lines), np.float32)
