"""Fits the geometry statistics of the synthetic renderer to the real SVHN train labels.

  python scripts/fit_synth_stats.py [--labels=PATH]

Reads ``../shared/data/svhn_train_labels.json`` (a list of {filename, width, height, boxes: [{label,
xmin, ymin, xmax, ymax}]}) and prints the constants pasted into `svhn_jax/data/synthetic.py`: the
length and digit distributions, and quantile tables (at `Q_PROBS`) of image height, digit height as a
fraction of the image height, box aspect per digit, horizontal gap and vertical step between
neighbouring boxes, image aspect per length and where the number sits in the image. Images with more
than 5 digits are left out, as the recipes drop them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np

DEFAULT_LABELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "svhn_train_labels.json"
Q_PROBS = (0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.995)


def _q(values, digits: int = 3) -> tuple[float, ...]:
    return tuple(round(float(v), digits) for v in np.quantile(np.asarray(values, float), Q_PROBS))


def _normal_scores(x: np.ndarray) -> np.ndarray:
    ranks = np.argsort(np.argsort(x, kind="stable"), kind="stable")
    inv = NormalDist().inv_cdf
    return np.array([inv((r + 0.5) / len(x)) for r in ranks])


def fit(records: list[dict]) -> dict[str, object]:
    """The fitted constants, by name, from the label records."""
    records = [r for r in records if 1 <= len(r["boxes"]) <= 5]
    lengths = np.array([len(r["boxes"]) for r in records])
    first, later = np.zeros(10), np.zeros(10)
    height, frac, img_aspect, cx, cy, gap, dy = [], [], {n: [] for n in range(1, 6)}, [], [], [], []
    aspect = {d: [] for d in range(10)}
    for r in records:
        bs = r["boxes"]
        w_img, h_img = float(r["width"]), float(r["height"])
        hs = np.array([b["ymax"] - b["ymin"] for b in bs], float)
        h = max(float(hs.mean()), 1.0)
        for i, b in enumerate(bs):
            digit = int(b["label"]) % 10
            (first if i == 0 else later)[digit] += 1
            aspect[digit].append((b["xmax"] - b["xmin"]) / max(b["ymax"] - b["ymin"], 1))
            if i:
                gap.append((b["xmin"] - bs[i - 1]["xmax"]) / h)
                dy.append((b["ymin"] - bs[i - 1]["ymin"]) / h)
        x0, x1 = min(b["xmin"] for b in bs), max(b["xmax"] for b in bs)
        y0, y1 = min(b["ymin"] for b in bs), max(b["ymax"] for b in bs)
        height.append(h_img)
        frac.append(h / h_img)
        img_aspect[min(len(bs), 4) if len(bs) == 5 else len(bs)].append(w_img / h_img)
        cx.append((x0 + x1) / 2 / w_img)
        cy.append((y0 + y1) / 2 / h_img)
    img_aspect[5] = img_aspect[4]  # five-digit images are too few to fit alone; they share the 4-digit table
    height, frac = np.array(height), np.array(frac)
    rho = float(np.corrcoef(_normal_scores(np.log(height)), _normal_scores(frac))[0, 1])
    counts = np.bincount(lengths, minlength=6)[1:]
    return {
        "Q_PROBS": Q_PROBS,
        "LENGTH_P": tuple(round(float(p), 5) for p in counts / counts.sum()),
        "FIRST_DIGIT_P": tuple(round(float(p), 4) for p in first / first.sum()),
        "LATER_DIGIT_P": tuple(round(float(p), 4) for p in later / later.sum()),
        "IMAGE_HEIGHT_Q": _q(height, 1),
        "DIGIT_HEIGHT_FRAC_Q": _q(frac),
        "HEIGHT_FRAC_RHO": round(rho, 3),
        "BOX_ASPECT_Q": tuple(_q(aspect[d]) for d in range(10)),
        "GAP_Q": _q(gap),
        "STEP_Y_Q": _q(dy),
        "IMAGE_ASPECT_Q": tuple(_q(img_aspect[n]) for n in range(1, 6)),
        "CENTER_X_Q": _q(cx),
        "CENTER_Y_Q": _q(cy),
    }


def format_constants(constants: dict[str, object]) -> str:
    lines = []
    for name, value in constants.items():
        if isinstance(value, tuple) and value and isinstance(value[0], tuple):
            lines.append(f"{name} = (")
            lines += [f"    {row},"for row in value]
            lines.append(")")
        else:
            lines.append(f"{name} = {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    args = parser.parse_args(argv)
    try:
        records = json.loads(args.labels.read_text())
        constants = fit(records)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"{args.labels}: cannot fit the label statistics ({e})", file=sys.stderr)
        return 1
    print(format_constants(constants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
