"""Writes the development photos' labels (../shared/data/real_photos_dev/labels.json) as the CSV that
`python -m svhn_jax.score_photos` reads: ``file,number[,x,y,w,h]`` with the union of the official
digit boxes (SVHN photos) or no box (users' photos).

  python scripts/dev_photo_labels.py --split=test --out=/tmp/test.csv
  python -m svhn_jax.score_photos --labels=/tmp/test.csv ../shared/data/real_photos_dev/test
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_photos_dev"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("test", "train", "users"), default="test")
    parser.add_argument("--labels", type=Path, default=DEV / "labels.json")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    lines = ["file,number,x,y,w,h"]
    for name, entry in json.loads(args.labels.read_text())[args.split].items():
        boxes = entry.get("boxes")
        if boxes:
            x0, y0 = min(b["xmin"] for b in boxes), min(b["ymin"] for b in boxes)
            x1, y1 = max(b["xmax"] for b in boxes), max(b["ymax"] for b in boxes)
            lines.append(f"{name},{entry['label']},{x0:g},{y0:g},{x1 - x0:g},{y1 - y0:g}")
        else:
            lines.append(f"{name},{entry['label']}")
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
