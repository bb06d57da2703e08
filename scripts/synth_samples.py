"""Draws a grid of synthetic house numbers with their labels and boxes: scripts/figures/synth_samples.png.

  python scripts/synth_samples.py [--seed=0] [--rows=6] [--cols=6] [--out=scripts/figures/synth_samples.png]

Each cell is a full synthetic photo (scaled to the cell) with its digit boxes outlined and its label as
the title; the bottom row shows what the seed recipe sees (the union of the boxes expanded by 30 %,
32x32 greyscale).
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from svhn_jax.data.synth import release as synthetic


def seed_crop(image: np.ndarray, boxes: np.ndarray, size: int = 32) -> np.ndarray:
    """The seed recipe's view: union of the boxes grown by 30 %, resized, greyscale."""
    x0, y0 = boxes[:, :2].min(0)
    x1, y1 = (boxes[:, :2] + boxes[:, 2:]).max(0)
    dx, dy = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
    crop = Image.fromarray(image).crop((int(x0 - dx), int(y0 - dy), int(x1 + dx), int(y1 + dy)))
    return np.asarray(crop.convert("L").resize((size, size), Image.Resampling.BILINEAR))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--cols", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "figures" / "synth_samples.png")
    args = parser.parse_args(argv)
    n = args.rows * args.cols
    fig, axes = plt.subplots(args.rows + 1, args.cols, figsize=(2.2 * args.cols, 1.45 * (args.rows + 1)),
                             gridspec_kw={"height_ratios": [1] * args.rows + [1.1]})
    for i, ax in enumerate(axes[:-1].ravel()):
        layout = synthetic.sample_layout(synthetic.example_rngs(args.seed, i)[0])
        image, boxes = synthetic.render(layout, synthetic.example_rngs(args.seed, i)[1])
        ax.imshow(image, interpolation="bilinear")
        for left, top, w, h in boxes:
            ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), w, h, fill=False, lw=0.6, ec="#00e5ff"))
        label = "".join(str(lab % 10) for lab in layout.labels)
        ax.set_title(f"{label}  ({layout.width}x{layout.height})", fontsize=8)
        ax.axis("off")
        if i < args.cols:
            crop = seed_crop(image, boxes)
            axes[-1, i].imshow(crop, cmap="gray", vmin=0, vmax=255)
            axes[-1, i].set_title(f"seed32_grey: {label}", fontsize=8)
            axes[-1, i].axis("off")
    fig.suptitle(f"Synthetic SVHN (seed {args.seed}): {n} photos with boxes; bottom: 32x32 grey crops",
                 fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100)
    Image.open(buf).convert("RGB").quantize(256).save(args.out, optimize=True)  # a 256-colour PNG: small
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
