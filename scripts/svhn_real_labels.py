"""Writes a format-1 SVHN folder's labels (its ``digitStruct.mat``) as the CSV that
`python -m svhn_jax.score_photos` reads: ``file,number,x,y,w,h`` with the union of the digit boxes,
so the real test photos are read with their official box as predict reads them.

  python scripts/svhn_real_labels.py --folder=../shared/data/svhn_real/test --out=/tmp/real_test.csv
  python -m svhn_jax.score_photos --localiser=none --labels=/tmp/real_test.csv ../shared/data/svhn_real/test
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from svhn_jax.data.svhn.digitstruct import Entry, read_digitstruct


def csv_lines(entries: list[Entry]) -> list[str]:
    """The header and one ``file,number,x,y,w,h`` line per entry (SVHN's label 10 is the digit 0)."""
    lines = ["file,number,x,y,w,h"]
    for e in entries:
        number = "".join(str(int(b.label) % 10) for b in e.boxes)
        x0, y0 = min(b.left for b in e.boxes), min(b.top for b in e.boxes)
        x1 = max(b.left + b.width for b in e.boxes)
        y1 = max(b.top + b.height for b in e.boxes)
        lines.append(f"{e.name},{number},{x0:g},{y0:g},{x1 - x0:g},{y1 - y0:g}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="a folder with PNGs and digitStruct.mat")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    mat = args.folder / "digitStruct.mat"
    try:
        entries = read_digitstruct(mat)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {mat}: cannot read the labels ({e})", file=sys.stderr)
        return 1
    args.out.write_text("\n".join(csv_lines(entries)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
