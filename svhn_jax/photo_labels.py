"""Labels of a folder of photos: a CSV of ``file,number[,x,y,w,h]`` or a JSON list of {file, number, box}.

Read by `score_photos` (the numbers to score against) and `predict --boxes` (where to read).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """[{"file", "number", "box" (x, y, w, h) or None}] from a CSV or JSON labels file."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() == ".json":
        rows = [(r["file"], str(r["number"]), r.get("box")) for r in json.loads(text)]
    else:
        rows = []
        for cells in csv.reader(line for line in text.splitlines() if line.strip()):
            cells = [c.strip() for c in cells]
            if not cells[1].isdigit():
                if not rows:  # a header
                    continue
                raise ValueError(f"{path}: {cells[0]}: number {cells[1]!r} is not a house number")
            rows.append((cells[0], cells[1], [float(v) for v in cells[2:6]] if len(cells) >= 6 else None))
    return [{"file": f, "number": n, "box": tuple(int(round(v)) for v in b) if b else None} for f, n, b in rows]
