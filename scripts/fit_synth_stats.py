"""Fits the geometry statistics of the synthetic renderer to the real SVHN train labels.

  python scripts/fit_synth_stats.py [--labels=PATH] [--out=PATH]

Reads ``../shared/data/svhn_train_labels.json`` (a list of {filename, width, height, boxes: [{label,
xmin, ymin, xmax, ymax}]}) and writes the tables that `svhn_jax/data/synth/geometry.py` loads
(``svhn_jax/data/synth/stats.json``, or ``--out``): the
length and digit distributions, and quantile tables (at `Q_PROBS`) of image height, digit height as a
fraction of the image height, box aspect per digit, the overlap of neighbouring boxes as a fraction
of the narrower one (negative: a gap), the vertical step between neighbouring boxes, image aspect
per length and where the number sits in the image, plus the
correlations that tie these together (height vs. digit fraction; box aspects, gaps and steps of
neighbouring digits of one image) as Gaussian-copula correlations (from Spearman's). Images with more
than 5 digits are left out, as the recipes drop them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_LABELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "svhn_train_labels.json"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "svhn_jax" / "data" / "synth" / "stats.json"
Q_PROBS = (0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.995)


def _q(values, digits: int = 3) -> tuple[float, ...]:
    return tuple(round(float(v), digits) for v in np.quantile(np.asarray(values, float), Q_PROBS))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of `x`, ties sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def _gaussian_rho(a: np.ndarray, b: np.ndarray) -> float:
    """The Gaussian-copula correlation matching the Spearman correlation of `a` and `b`."""
    spearman = np.corrcoef(_ranks(np.asarray(a, float)), _ranks(np.asarray(b, float)))[0, 1]
    return round(float(2 * np.sin(np.pi * spearman / 6)), 3)


def fit(records: list[dict]) -> dict[str, object]:
    """The fitted constants, by name, from the label records."""
    records = [r for r in records if 1 <= len(r["boxes"]) <= 5]
    lengths = np.array([len(r["boxes"]) for r in records])
    first, later = np.zeros(10), np.zeros(10)
    height, frac, img_aspect, cx, cy, overlap, dy = [], [], {n: [] for n in range(1, 6)}, [], [], [], []
    aspect = {d: [] for d in range(10)}
    overlap_pairs, step_pairs, aspect_pairs = [], [], []  # neighbours within one image
    for r in records:
        bs = r["boxes"]
        w_img, h_img = float(r["width"]), float(r["height"])
        hs = np.array([b["ymax"] - b["ymin"] for b in bs], float)
        h = max(float(hs.mean()), 1.0)
        ids = []  # (digit, index into aspect[digit]) of each box
        for i, b in enumerate(bs):
            digit = int(b["label"]) % 10
            (first if i == 0 else later)[digit] += 1
            ids.append((digit, len(aspect[digit])))
            aspect[digit].append((b["xmax"] - b["xmin"]) / max(b["ymax"] - b["ymin"], 1))
            if i:
                narrower = max(min(b["xmax"] - b["xmin"], bs[i - 1]["xmax"] - bs[i - 1]["xmin"]), 1)
                overlap.append((bs[i - 1]["xmax"] - b["xmin"]) / narrower)
                dy.append((b["ymin"] - bs[i - 1]["ymin"]) / h)
                aspect_pairs.append((*ids[i - 1], *ids[i]))
                if i >= 2:
                    overlap_pairs.append((overlap[-2], overlap[-1]))
                    step_pairs.append((dy[-2], dy[-1]))
        x0, x1 = min(b["xmin"] for b in bs), max(b["xmax"] for b in bs)
        y0, y1 = min(b["ymin"] for b in bs), max(b["ymax"] for b in bs)
        height.append(h_img)
        frac.append(h / h_img)
        img_aspect[min(len(bs), 4)].append(w_img / h_img)
        cx.append((x0 + x1) / 2 / w_img)
        cy.append((y0 + y1) / 2 / h_img)
    img_aspect[5] = img_aspect[4]  # five-digit images are too few to fit alone; they share the 4-digit table
    height, frac = np.array(height), np.array(frac)
    counts = np.bincount(lengths, minlength=6)[1:]
    within = {d: _ranks(np.array(v)) / len(v) for d, v in aspect.items()}  # aspect rank within its digit
    aspect_u = np.array([(within[da][ia], within[db][ib]) for da, ia, db, ib in aspect_pairs])
    overlap_pairs, step_pairs = np.array(overlap_pairs), np.array(step_pairs)
    return {
        "Q_PROBS": Q_PROBS,
        "LENGTH_P": tuple(round(float(p), 5) for p in counts / counts.sum()),
        "FIRST_DIGIT_P": tuple(round(float(p), 4) for p in first / first.sum()),
        "LATER_DIGIT_P": tuple(round(float(p), 4) for p in later / later.sum()),
        "IMAGE_HEIGHT_Q": _q(height, 1),
        "DIGIT_HEIGHT_FRAC_Q": _q(frac),
        "HEIGHT_FRAC_RHO": _gaussian_rho(height, frac),
        "BOX_ASPECT_Q": tuple(_q(aspect[d]) for d in range(10)),
        "ASPECT_RHO": _gaussian_rho(aspect_u[:, 0], aspect_u[:, 1]),
        "OVERLAP_Q": _q(overlap),
        "OVERLAP_RHO": _gaussian_rho(overlap_pairs[:, 0], overlap_pairs[:, 1]),
        "STEP_Y_Q": _q(dy),
        "STEP_Y_RHO": _gaussian_rho(step_pairs[:, 0], step_pairs[:, 1]),
        "IMAGE_ASPECT_Q": tuple(_q(img_aspect[n]) for n in range(1, 6)),
        "CENTER_X_Q": _q(cx),
        "CENTER_Y_Q": _q(cy),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        records = json.loads(args.labels.read_text())
        constants = fit(records)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"{args.labels}: cannot fit the label statistics ({e})", file=sys.stderr)
        return 1
    args.out.write_text(json.dumps(constants, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
