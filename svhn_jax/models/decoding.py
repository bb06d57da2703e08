"""What the models' outputs mean, in numpy alone: readings from a reader's logits, boxes from the localiser's.

Importable without JAX (the ONNX path, `infer.onnx`): `decode_sequences` is `heads.decode`'s
arithmetic for any array module (`heads.decode` is it with jax.numpy, inside the jitted step), and
`decode_boxes` the localiser's decoding, given the softmax to use.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from svhn_jax.data.labels import MAX_DIGITS, PAD
from svhn_jax.data.preprocess import get_recipe

SIZE = get_recipe("scene128_rgb").size  # the localiser's input: the photo letterboxed into SIZE x SIZE
GRID = 16                               # its output map: GRID x GRID cells ...
CELL = SIZE // GRID                     # ... of CELL pixels
OFFSET_SCALE = 4.0 * CELL               # centre offsets are regressed in units of four cells


def log_softmax_np(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float32)
    shifted = x - x.max(axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis, keepdims=True))


def softmax_np(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.exp(log_softmax_np(x, axis))


def decode_sequences(logits: Any, xp: Any = np, log_softmax: Callable = log_softmax_np) -> tuple[Any, Any, Any]:
    """Logits -> (length int32 [B], digits int32 [B, 5] padded with PAD, confidence float32 [B]).

    ``blank`` head ({"digits": [B, 5, 11]}): the most likely class at each position; the sequence ends
    at the first blank, and the confidence is the product of the five chosen probabilities (blanks
    included), with any position after the first blank forced to blank. ``length`` head ({"length":
    [B, 7], "digits": [B, 5, 10]}): the most likely length L, then the most likely digit at each of
    the first L positions; confidence p(L) * prod p(digit_i). A length of 0 or ">5" (class 6) decodes
    to an empty sequence, which is never a correct answer.
    """
    digit_logp = log_softmax(logits["digits"].astype(xp.float32))
    positions = xp.arange(MAX_DIGITS)[None, :]
    if "length" not in logits:
        best = xp.argmax(digit_logp, -1)
        is_blank = best == PAD
        length = xp.where(is_blank.any(-1), xp.argmax(is_blank, -1), MAX_DIGITS)
        inside = positions < length[:, None]
        chosen = xp.where(inside, best, PAD)
        logp = xp.take_along_axis(digit_logp, chosen[..., None], -1)[..., 0].sum(-1)
        return length.astype(xp.int32), chosen.astype(xp.int32), xp.exp(logp)
    length_logp = log_softmax(logits["length"].astype(xp.float32))
    length = xp.argmax(length_logp, -1)
    length_logp_best = xp.max(length_logp, -1)
    length = xp.where(length > MAX_DIGITS, 0, length)  # ">5" cannot be read out: empty answer
    inside = positions < length[:, None]
    best = xp.argmax(digit_logp, -1)
    digit_logp_best = xp.max(digit_logp, -1)
    chosen = xp.where(inside, best, PAD)
    logp = length_logp_best + xp.sum(xp.where(inside, digit_logp_best, 0.0), -1)
    return length.astype(xp.int32), chosen.astype(xp.int32), xp.exp(logp)


def cell_centres() -> np.ndarray:
    """[GRID, GRID, 2] centres (x, y) of the localiser's cells, in input pixels."""
    c = (np.arange(GRID, dtype=np.float32) + 0.5) * CELL
    return np.stack(np.meshgrid(c, c, indexing="xy"), -1)


def logits_of(outputs: dict[str, Any], xp: Any = np) -> Any:
    """The localiser's [B, GRID * GRID + 1] logits: one per cell, then "no number"."""
    cells = outputs["cells"]
    return xp.concatenate([cells[..., 0].reshape(len(cells), -1), outputs["none"][:, None]], 1)


def decode_boxes(outputs: dict[str, Any], k: int = 3,
                 softmax: Callable = softmax_np) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outputs of a batch -> (boxes [B, k, 4] x, y, w, h in the letterboxed photo, confidence [B, k],
    p_none [B]): the `k` highest local peaks of the centre map, best first, each with the probability mass
    of the 3 x 3 cells around it (the localiser's confidence that the number is there). `softmax` of the
    [B, GRID * GRID + 1] logits: JAX's where the outputs came from JAX (the same bits as ever)."""
    probs = np.asarray(softmax(logits_of(outputs)))
    cells = np.asarray(outputs["cells"])
    heat = probs[:, :-1].reshape(-1, GRID, GRID)
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)))
    window = np.stack([padded[:, i:i + GRID, j:j + GRID] for i in range(3) for j in range(3)])
    mass, peak = window.sum(0), heat >= window.max(0)
    centres = cell_centres()
    boxes, confidence = np.zeros((len(heat), k, 4), np.float32), np.zeros((len(heat), k), np.float32)
    for b in range(len(heat)):
        order = np.argsort(-np.where(peak[b], heat[b], -1.0), axis=None)[:k]
        for n, flat in enumerate(order):
            i, j = divmod(int(flat), GRID)
            c = centres[i, j] + cells[b, i, j, 1:3] * OFFSET_SCALE
            wh = np.exp(cells[b, i, j, 3:5]) * SIZE
            boxes[b, n] = [*(c - wh / 2), *wh]
            confidence[b, n] = mass[b, i, j] if peak[b, i, j] else 0.0
    return boxes, confidence, probs[:, -1]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes [..., 4] (x, y, w, h); 0 where either is empty or NaN."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    x0, y0 = np.maximum(a[..., 0], b[..., 0]), np.maximum(a[..., 1], b[..., 1])
    x1 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y1 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(np.where(union > 0, inter / union, 0.0))
