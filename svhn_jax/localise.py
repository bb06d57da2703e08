"""Finding the house number in a whole photo: the localiser's targets, loss and decoding (pure).

The localiser (`models/localiser.py`) sees the photo letterboxed to SIZE x SIZE and answers, over a
GRID x GRID map of cells plus one "no number" outcome, a softmax: where the centre of the number's
union box is. Its target spreads the centre over nearby cells (a Gaussian as wide as a fifth of the
box's smaller side), and every cell regresses the box it would report: the centre's offset from the
cell's centre and the box's log width and height, weighted like the target. `decode` returns up to
`k` candidate boxes, best first, each with the probability mass of the 3 x 3 cells around its peak:
the localiser's confidence that the number is there. `Localiser` runs it on photos.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from svhn_jax.data.synth_scene import SIZE, letterbox

GRID = 16
CELL = SIZE // GRID
OFFSET_SCALE = 4.0 * CELL   # centre offsets are regressed in units of four cells
MIN_SIGMA = 0.6 * CELL      # the target's spread over cells, in pixels: at least this ...
SIGMA_FRACTION = 0.2        # ... or this fraction of the box's smaller side
BOX_WEIGHT = 2.0            # of the box regression against the centre's cross-entropy


def prepare(images: jax.Array) -> jax.Array:
    """uint8 [B, S, S, 3] -> float32, each image standardised (zero mean, unit deviation)."""
    x = images.astype(jnp.float32) / 255.0
    mean = x.mean((1, 2, 3), keepdims=True)
    return (x - mean) / jnp.maximum(x.std((1, 2, 3), keepdims=True), 1.0 / 255.0)


def _cell_centres() -> jax.Array:
    c = (jnp.arange(GRID, dtype=jnp.float32) + 0.5) * CELL
    return jnp.stack(jnp.meshgrid(c, c, indexing="xy"), -1)  # [GRID, GRID, 2] as (x, y)


def targets(boxes: jax.Array) -> tuple[jax.Array, jax.Array]:
    """float32 [B, 4] (x, y, w, h; NaN: no number) -> (target probabilities [B, GRID*GRID + 1], box
    regression targets [B, GRID, GRID, 4])."""
    has = ~jnp.isnan(boxes[:, 0])
    b = jnp.where(has[:, None], boxes, jnp.array([0.0, 0.0, 1.0, 1.0]))
    b = b.at[:, 2:].set(jnp.maximum(b[:, 2:], 1.0))  # a box is at least a pixel (log sizes stay finite)
    centre = b[:, :2] + b[:, 2:] / 2
    sigma = jnp.maximum(MIN_SIGMA, SIGMA_FRACTION * b[:, 2:].min(1))
    d2 = ((_cell_centres()[None] - centre[:, None, None]) ** 2).sum(-1)
    heat = jnp.exp(-d2 / (2 * sigma[:, None, None] ** 2)).reshape(len(b), -1)
    heat = heat / heat.sum(1, keepdims=True)
    probs = jnp.where(has[:, None], jnp.concatenate([heat, jnp.zeros((len(b), 1))], 1),
                      jax.nn.one_hot(GRID * GRID, GRID * GRID + 1))
    offsets = (centre[:, None, None] - _cell_centres()[None]) / OFFSET_SCALE
    log_size = jnp.log(b[:, 2:] / SIZE)[:, None, None].repeat(GRID, 1).repeat(GRID, 2)
    return probs, jnp.concatenate([offsets, log_size], -1)


def _logits(outputs: dict[str, jax.Array]) -> jax.Array:
    cells = outputs["cells"]
    return jnp.concatenate([cells[..., 0].reshape(len(cells), -1), outputs["none"][:, None]], 1)


def loss(outputs: dict[str, jax.Array], boxes: jax.Array) -> jax.Array:
    """Per-photo loss: cross-entropy of the centre map + BOX_WEIGHT x the target-weighted L1 of the box terms."""
    probs, reg = targets(boxes)
    ce = -(probs * jax.nn.log_softmax(_logits(outputs))).sum(1)
    weights = probs[:, :-1].reshape(-1, GRID, GRID)
    l1 = (jnp.abs(outputs["cells"][..., 1:] - reg).sum(-1) * weights).sum((1, 2))
    return ce + BOX_WEIGHT * l1


def decode(outputs: dict[str, Any], k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outputs of a batch -> (boxes [B, k, 4] x, y, w, h in the letterboxed photo, confidence [B, k],
    p_none [B]): the `k` highest local peaks of the centre map, best first (numpy)."""
    probs = np.asarray(jax.nn.softmax(_logits(outputs)))
    cells = np.asarray(outputs["cells"])
    heat = probs[:, :-1].reshape(-1, GRID, GRID)
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)))
    window = np.stack([padded[:, i:i + GRID, j:j + GRID] for i in range(3) for j in range(3)])
    mass, peak = window.sum(0), heat >= window.max(0)
    centres = np.asarray(_cell_centres())
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


@dataclasses.dataclass
class Localiser:
    """Shipped (or trained) localiser weights, ready to find numbers in photos."""

    variables: Any
    apply: Any  # jitted (variables, uint8 [B, S, S, 3]) -> outputs

    @classmethod
    def load(cls, workdir: str | None = None) -> "Localiser":
        """The shipped localiser, or the latest checkpoint of a localiser run in `workdir`."""
        from svhn_jax import pretrained
        from svhn_jax import workdir as workdir_lib
        config, model, variables = (workdir_lib.load_for_inference(workdir) if workdir
                                    else pretrained.load("localiser"))
        if config.model != "localiser":
            raise workdir_lib.RunError(f"{workdir}: that workdir holds a reader (model {config.model}), not a "
                                       "localiser; give it as --workdir")
        return cls(variables=variables, apply=jax.jit(lambda v, x: model.apply(v, prepare(x))))

    def locate(self, photos: list[np.ndarray], k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB uint8 photos (any sizes) -> (boxes [N, k, 4] in each photo's pixels, confidence [N, k], p_none [N])."""
        inputs, frames = zip(*[(canvas, (scale, offset)) for canvas, scale, offset in map(letterbox, photos)])
        batch = np.stack(inputs)
        boxes, confidence, p_none = decode(self.apply(self.variables, batch), k)
        for n, (scale, (left, top)) in enumerate(frames):
            boxes[n, :, :2] = (boxes[n, :, :2] - [left, top]) / scale
            boxes[n, :, 2:] /= scale
        return boxes, confidence, p_none
