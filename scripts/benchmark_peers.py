"""svhn_jax beside general OCR packages (RapidOCR 1.4.4: PaddleOCR PP-OCRv4; RapidOCR 3.10: PP-OCRv6 small; both
through ONNX Runtime) on one labelled folder of photos, in one run: accuracy, confident answers, seconds a
photo, per photo answers.

  python scripts/benchmark_peers.py --labels=CSV FOLDER [--boxes] [--json_out=FILE] [--min_confidence=0.9]
                                    [--systems=rapidocr_1.4.4,rapidocr_3.10,svhn_jax[,svhn_jax_old]]

Labels: the CSV (``file,number[,x,y,w,h]``, ``none`` = no house number) or JSON that
``python -m svhn_jax.score_photos`` reads (``scripts/dev_photo_labels.py`` writes it for the dev photos).
The peers are the optional extra ``pip install -e '.[peers]'`` (``rapidocr_onnxruntime==1.4.4`` and
``rapidocr==3.10.0``, the models in their wheels), never a dependency of the package; a peer asked for
(``--systems``) and not installed is one line and exit status 2, before anything is read. So is a
``--json_out`` that cannot be written (a folder, a missing parent): checked before the run; the report is
written atomically at the end (a full disk keeps an earlier file whole).

The peers' wrapper (`load_rapidocr`, as issue 20 fixes it, the same for both versions): the photo decoded
by content, not by its name's extension (JPEG under ``.png``), EXIF orientation applied; with ``--boxes``
the labelled box padded 15 % on each side and cropped; the image (photo or crop) upscaled (bicubic) so that it is
at least ``--min_height`` (96) pixels high (SVHN photos can be ~40 px high; PP-OCR reads text lines at 48 px);
a JPEG bigger than RapidOCR's own limit (2,000 px) decoded at a reduced scale (JPEG DCT scaling, as
svhn_jax does). On a whole photo RapidOCR's default pipeline (text detection, angle classifier,
recognition; lines under its 0.5 score dropped) gives text lines; a box is already the text line, so
the crop goes to the angle classifier and recogniser only (one line, the crop's height): RapidOCR's
detector run inside such a tight crop finds no text in most of them (``--peer_detect_in_box`` runs it
anyway, to measure that). Each line keeps only its digits 0-9; the answer is the digit string of the
tallest line that has one (height: its box's vertical extent; ties: the higher score), its
confidence that line's recognition score; no line with a digit answers none.

RapidOCR 3.10's API differs (a result object with ``boxes``, ``txts``, ``scores``): `rapidocr3_lines`
turns it into 1.4.4's lines, so both go through the same `digit_answer`.

svhn_jax reads in-process exactly as ``score_photos`` (and ``predict``) read: the shipped models,
no box (the whole photo) or, with ``--boxes``, the labelled box; the confidence is predict's answer's
``confidence``. Its one call into the package is `load_svhn_jax`. ``svhn_jax_old`` (asked for by
``--systems``) is the whole-photo pipeline before issue 27 (``svhn_jax/infer/whole_photo.py`` at
``--old_rev``, read from git, on the same shipped reader and localiser): the old and new pipelines in
one run.

Scoring (`summarise`): a photo is right when the whole number is (exact string; a photo without a
number is right when the answer is none); at ``--min_confidence``: answered (a number at or above
it), right among those, precision = right / answered, coverage = answered / photos. Timing: each
system is imported, loaded and warmed up on the first photo (``warm_start_s``: what a user waits for
before the first answer, compilation cache as ``predict`` keeps it), then every photo is read and
timed apart (``seconds_per_photo``: mean; the median too). The systems run one after the other, in
one process; wall-clock on a shared machine is noisy.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/benchmark_peers.py` from a checkout
    sys.path.insert(0, str(REPO))

PAD = 0.15  # the labelled box padded by this fraction of its width / height on each side
MIN_HEIGHT = 96  # the image handed to RapidOCR is upscaled to at least this many pixels high
RAPIDOCR_MAX_SIDE = 2000  # RapidOCR's own max_side_len: bigger photos are reduced to it anyway
MISSING = ("rapidocr_onnxruntime is not installed: pip install -e '.[peers]' "
           "(or pip install rapidocr_onnxruntime==1.4.4)")
MISSING_3 = ("rapidocr (3.10) is not installed: pip install -e '.[peers]' "
             "(or pip install rapidocr==3.10.0)")
SYSTEMS = ("rapidocr_1.4.4", "rapidocr_3.10", "svhn_jax", "svhn_jax_old")
DEFAULT_SYSTEMS = "rapidocr_1.4.4,rapidocr_3.10,svhn_jax"
OLD_REV = "10d95a0"  # the last commit of the pipeline before issue 27 (localiser + square reader + rules)
Answer = dict[str, Any]


# ----------------------------------------------------------------------------- pure helpers

def digit_answer(lines: Sequence[Sequence[Any]] | None) -> tuple[str | None, float]:
    """RapidOCR's result lines ``[box (4 points [x, y]), text, score]`` (or None: nothing found) ->
    (the digits of the tallest line holding any, its score), or (None, 0.0) when no line has a digit."""
    best: tuple[float, float, str] | None = None
    for box, text, score in lines or ():
        digits = re.sub(r"[^0-9]", "", str(text))
        if digits:
            ys = [float(point[1]) for point in box]
            key = (max(ys) - min(ys), float(score), digits)
            if best is None or key[:2] > best[:2]:
                best = key
    return (best[2], best[1]) if best else (None, 0.0)


def padded_box(box: Sequence[float], width: int, height: int, pad: float = PAD) -> tuple[int, int, int, int]:
    """(x, y, w, h) padded by `pad` of its size on each side, as (left, top, right, bottom) inside the image."""
    x, y, w, h = box
    return (max(0, math.floor(x - pad * w)), max(0, math.floor(y - pad * h)),
            min(width, math.ceil(x + w + pad * w)), min(height, math.ceil(y + h + pad * h)))


def upscaled_size(width: int, height: int, min_height: int = MIN_HEIGHT) -> tuple[int, int]:
    """The size to hand to OCR: unchanged when at least `min_height` high, else scaled up to it."""
    if height >= min_height:
        return width, height
    factor = min_height / height
    return max(1, round(width * factor)), min_height


def is_right(answer: Answer, truth: str) -> bool:
    """The whole number, exactly (`truth` "": the photo holds none and the answer is none); an
    unreadable file is never right. The same rule as ``score_photos.is_right``."""
    return not answer.get("error") and (answer.get("number") or "") == truth


def summarise(answers: Sequence[Answer], truths: Sequence[str], min_confidence: float) -> dict[str, Any]:
    """Accuracy and the confident answers' precision and coverage of `answers` ({"number" str or None,
    "confidence"}) against `truths` ("" = no number)."""
    right = [is_right(a, t) for a, t in zip(answers, truths)]
    confident = [r for a, r in zip(answers, right)
                 if a.get("number") is not None and a["confidence"] >= min_confidence]
    n = len(right)
    return {"num": n, "right": sum(right), "accuracy": sum(right) / n if n else None,
            "min_confidence": min_confidence, "answered": len(confident), "answered_right": sum(confident),
            "precision": sum(confident) / len(confident) if confident else None,
            "coverage": len(confident) / n if n else None}


def timing(load_s: float, seconds: Sequence[float]) -> dict[str, Any]:
    return {"warm_start_s": load_s, "seconds_per_photo": statistics.fmean(seconds) if seconds else None,
            "median_seconds_per_photo": statistics.median(seconds) if seconds else None}


# ----------------------------------------------------------------------------- the two systems

def import_rapidocr(version: str = "1.4.4") -> tuple[Any, float]:
    """(the RapidOCR class of `version` "1.4.4" or "3.10", seconds its import took); SystemExit(2) with one
    line when it is missing."""
    start = time.perf_counter()
    try:
        if version == "1.4.4":
            from rapidocr_onnxruntime import RapidOCR
        else:
            from rapidocr import RapidOCR
    except ImportError:
        print(f"error: {MISSING if version == '1.4.4' else MISSING_3}", file=sys.stderr)
        raise SystemExit(2) from None
    return RapidOCR, time.perf_counter() - start


def rapidocr3_lines(result: Any) -> list[list[Any]] | None:
    """RapidOCR 3.x's result (``boxes`` [N, 4, 2] or None, ``txts``, ``scores``) as 1.4.4's lines
    ``[box, text, score]`` (None: nothing found)."""
    boxes, txts, scores = (getattr(result, k, None) for k in ("boxes", "txts", "scores"))
    if boxes is None or txts is None:
        return None
    return [[[[float(x), float(y)] for x, y in box], str(text), float(score)]
            for box, text, score in zip(boxes, txts, scores)]


def rapidocr3_texts(result: Any) -> list[tuple[str, float]]:
    """RapidOCR 3.x's recognition-only result (``txts``, ``scores``) as 1.4.4's ``[(text, score)]``."""
    txts, scores = getattr(result, "txts", None), getattr(result, "scores", None)
    return [] if txts is None else [(str(t), float(c)) for t, c in zip(txts, scores)]


def open_photo(path: Path, box: Sequence[float] | None, min_height: int) -> Any:
    """The PIL image RapidOCR reads: decoded by content, EXIF-rotated, RGB, cropped to the padded box
    (if any), upscaled to `min_height`."""
    from PIL import Image, ImageOps
    with Image.open(path) as im:
        if box is None and im.format == "JPEG" and max(im.size) > RAPIDOCR_MAX_SIDE:
            factor = RAPIDOCR_MAX_SIDE / max(im.size)
            im.draft("RGB", (math.ceil(im.width * factor), math.ceil(im.height * factor)))
        image = ImageOps.exif_transpose(im).convert("RGB")
    if box is not None:
        image = image.crop(padded_box(box, image.width, image.height))
    size = upscaled_size(image.width, image.height, min_height)
    return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)


def whole_image_lines(results: Sequence[Sequence[Any]] | None, width: int, height: int) -> list[list[Any]]:
    """RapidOCR's recognition-only results ``[text, score]`` as lines whose box is the whole image."""
    box = [[0, 0], [width, 0], [width, height], [0, height]]
    return [[box, text, score] for text, score, *_ in results or ()]


def load_rapidocr(rapidocr_class: Any, min_height: int, detect_in_box: bool = False,
                  version: str = "1.4.4") -> Callable[[Path, Any], Answer]:
    """read(path, box or None) -> the peer's answer: the whole photo through RapidOCR's full pipeline;
    a box (a text line already found) through its angle classifier and recogniser only, unless
    `detect_in_box` (then the full pipeline on the crop too). `version` "3.10": RapidOCR 3's result objects."""
    engine = rapidocr_class()

    def read(path: Path, box: Sequence[float] | None) -> Answer:
        image = open_photo(path, box, min_height)
        if version != "1.4.4":
            if box is None or detect_in_box:
                lines = rapidocr3_lines(engine(image))
            else:
                lines = whole_image_lines(rapidocr3_texts(engine(image, use_det=False)), image.width, image.height)
        elif box is None or detect_in_box:
            lines, _ = engine(image)
        else:
            lines = whole_image_lines(engine(image, use_det=False)[0], image.width, image.height)
        number, confidence = digit_answer(lines)
        return {"number": number, "confidence": confidence,
                "lines": [[text, round(float(score), 4), round(max(p[1] for p in b) - min(p[1] for p in b), 1)]
                          for b, text, score in lines or ()]}
    return read


def load_svhn_jax() -> Callable[[Path, Any], Answer]:
    """The shipped reader and localiser; read(path, box or None) -> predict's answer for the photo,
    read as ``score_photos`` reads it. The benchmark's only calls into the package are here."""
    from absl import logging

    from svhn_jax.cli import score_photos
    from svhn_jax.core import compilation_cache
    from svhn_jax.core.cli import quiet_libraries
    from svhn_jax.infer.localiser import Localiser
    from svhn_jax.infer.reader import Reader
    logging.set_verbosity(logging.ERROR)
    quiet_libraries()
    compilation_cache.enable(None)  # as predict does: the user cache folder or $SVHN_JAX_COMPILATION_CACHE
    reader, localiser = Reader.load(None), Localiser.load(None)

    def read(path: Path, box: Sequence[float] | None) -> Answer:
        row = {"file": path.name, "number": "", "box": tuple(box) if box is not None else None}
        a = score_photos.read_all(reader, localiser, path.parent, [row], use_box=box is not None)[0]
        return {k: a.get(k) for k in ("number", "confidence", "reading", "box", "reason", "error") if k in a}
    return read


def load_svhn_jax_old(rev: str = OLD_REV) -> Callable[[], Callable[[Path, Any], Answer]]:
    """The whole-photo pipeline before issue 27: ``svhn_jax/infer/whole_photo.py`` at git revision `rev`
    (read with ``git show``; SystemExit(2) with one line when git cannot give it), run on the shipped
    reader and localiser. Returns the loader (`run_system` times the load)."""
    import subprocess
    try:
        source = subprocess.run(["git", "show", f"{rev}:svhn_jax/infer/whole_photo.py"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"error: --old_rev={rev}: cannot read the old pipeline from git ({getattr(e, 'stderr', '') or e})"
              .strip(), file=sys.stderr)
        raise SystemExit(2) from None

    def load() -> Callable[[Path, Any], Answer]:
        import types

        from absl import logging

        from svhn_jax.core import compilation_cache
        from svhn_jax.core.cli import quiet_libraries
        from svhn_jax.infer.localiser import Localiser
        from svhn_jax.infer.reader import Reader
        logging.set_verbosity(logging.ERROR)
        quiet_libraries()
        compilation_cache.enable(None)
        old = types.ModuleType("whole_photo_old")
        # our own code, as it was at `rev` (from git): run as a module of its own
        exec(compile(source, f"whole_photo.py@{rev}", "exec"), old.__dict__)
        reader, localiser = Reader.load(None), Localiser.load(None)

        def read(path: Path, box: Sequence[float] | None) -> Answer:
            result, _, _ = old.read_file(reader, localiser, str(path), tuple(box) if box is not None else None)
            a = old.answer(path.name, result, 0.0)
            return {k: a.get(k) for k in ("number", "confidence", "reading", "box", "reason") if k in a}
        return read
    return load


def run_system(load: Callable[[], Callable[[Path, Any], Answer]], folder: Path, labels: Sequence[dict[str, Any]],
               use_box: bool, extra_load_s: float = 0.0) -> tuple[list[Answer], dict[str, Any]]:
    """Loads a system, warms it up on the first photo, then reads every photo; (answers, timing)."""
    start = time.perf_counter()
    read = load()

    def safe_read(row: dict[str, Any]) -> Answer:
        try:
            return read(folder / row["file"], row["box"] if use_box else None)
        except Exception as e:  # one unreadable photo must not stop the others
            return {"number": None, "confidence": 0.0, "error": f"{type(e).__name__}: {e}"}

    safe_read(labels[0])
    load_s = time.perf_counter() - start + extra_load_s
    answers, seconds = [], []
    for row in labels:
        start = time.perf_counter()
        a = safe_read(row)
        seconds.append(time.perf_counter() - start)
        answers.append({"file": row["file"], "truth": row["number"] or None, **a, "right": is_right(a, row["number"]),
                        "seconds": round(seconds[-1], 4)})
    return answers, timing(load_s, seconds)


# ----------------------------------------------------------------------------- report

def _count(s: dict[str, Any]) -> str:
    return f"{s['right']}/{s['num']} ({100 * s['accuracy']:.1f} %)"


def _confident(s: dict[str, Any]) -> str:
    precision = "-" if s["precision"] is None else f"{100 * s['precision']:.0f} %"
    return f"{s['answered_right']}/{s['answered']} right ({precision}; coverage {100 * s['coverage']:.0f} %)"


def table(systems: dict[str, dict[str, Any]], min_confidence: float) -> str:
    names = list(systems)
    rows = [("", *names),
            ("right (whole number)", *(_count(systems[n]["summary"]) for n in names)),
            (f"confidence >= {min_confidence:g}", *(_confident(systems[n]["summary"]) for n in names)),
            ("s/photo (warm, mean)", *(f"{systems[n]['timing']['seconds_per_photo']:.3f}" for n in names)),
            ("warm start s", *(f"{systems[n]['timing']['warm_start_s']:.1f}" for n in names))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.append("")
    for i, a in enumerate(systems[names[0]]["answers"]):
        cells = []
        for n in names:
            b = systems[n]["answers"][i]
            cells.append(f"{n}: {b['number'] or '-':>6} ({b['confidence']:.2f}) {'ok ' if b['right'] else 'BAD'}")
        lines.append(f"{a['file']:>40}  truth {a['truth'] or 'none':>6}  " + "   ".join(cells))
    return "\n".join(lines)


def versions() -> dict[str, str | None]:
    from importlib import metadata
    out = {}
    for name in ("rapidocr_onnxruntime", "rapidocr", "onnxruntime", "opencv-python", "jax", "jaxlib", "svhn_jax"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--labels", required=True, help="CSV file,number[,x,y,w,h] or JSON, as score_photos reads")
    parser.add_argument("--boxes", action="store_true", help="Read the labelled box (both systems).")
    parser.add_argument("--json_out", default="", help="Also write the summary and every answer here.")
    parser.add_argument("--min_confidence", type=float, default=0.9)
    parser.add_argument("--min_height", type=int, default=MIN_HEIGHT,
                        help="RapidOCR's input is upscaled to at least this height (0: never).")
    parser.add_argument("--peer_detect_in_box", action="store_true",
                        help="With --boxes, run RapidOCR's text detector in the crop too (default: recognition only).")
    parser.add_argument("--systems", default=DEFAULT_SYSTEMS,
                        help=f"Comma-separated, run in this order; of {', '.join(SYSTEMS)}.")
    parser.add_argument("--old_rev", default=OLD_REV, help="The git revision svhn_jax_old's pipeline is read from.")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if not names or unknown or len(set(names)) != len(names):
        print(f"error: --systems={args.systems}: name each of {', '.join(SYSTEMS)} at most once", file=sys.stderr)
        return 2
    if args.json_out:
        problem = output_problem(Path(args.json_out))
        if problem:
            print(f"error: --json_out={args.json_out}: cannot write there ({problem})", file=sys.stderr)
            return 2
    from svhn_jax.infer.photos import read_labels
    try:
        labels = read_labels(args.labels)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        print(f"error: {args.labels}: cannot read the labels ({e})", file=sys.stderr)
        return 2
    if not labels:
        print(f"error: {args.labels}: no labelled photos", file=sys.stderr)
        return 2
    if args.boxes and not all(r["box"] for r in labels):
        missing = sum(not r["box"] for r in labels)
        print(f"error: --boxes: {missing} of {len(labels)} photos have no box in {args.labels}", file=sys.stderr)
        return 2
    if not 0.0 <= args.min_confidence <= 1.0:
        print(f"error: --min_confidence={args.min_confidence}: must lie in 0-1", file=sys.stderr)
        return 2
    if not args.folder.is_dir():
        print(f"error: {args.folder}: not a folder", file=sys.stderr)
        return 2
    loaders = {}  # every system asked for is checked (imported) before the first photo is read
    for name in names:
        if name.startswith("rapidocr_"):
            version = name.split("_", 1)[1]
            rapidocr_class, import_s = import_rapidocr(version)
            loaders[name] = (functools.partial(load_rapidocr, rapidocr_class, args.min_height,
                                               args.peer_detect_in_box, version), import_s)
        elif name == "svhn_jax":
            loaders[name] = (load_svhn_jax, 0.0)
        else:
            loaders[name] = (load_svhn_jax_old(args.old_rev), 0.0)
    truths = [r["number"] for r in labels]
    systems = {}
    for name, (load, extra) in loaders.items():
        answers, times = run_system(load, args.folder, labels, args.boxes, extra)
        systems[name] = {"summary": summarise(answers, truths, args.min_confidence), "timing": times,
                         "answers": answers}
    print(table(systems, args.min_confidence))
    if args.json_out:
        report = {"folder": str(args.folder), "labels": str(args.labels), "boxes": args.boxes,
                  "min_confidence": args.min_confidence, "min_height": args.min_height, "pad": PAD,
                  "peer_detect_in_box": args.peer_detect_in_box,
                  "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                  "versions": versions(), "systems": systems}
        try:
            write_report(Path(args.json_out), report)
        except OSError as e:
            print(f"error: --json_out={args.json_out}: cannot write there ({e.strerror or e}); "
                  "an earlier file is kept", file=sys.stderr)
            return 1
    return 0


def output_problem(path: Path) -> str | None:
    """Why the report cannot be written at `path` (checked before the run), or None: a folder, a missing
    or unwritable parent folder."""
    if path.is_dir():
        return "a folder"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return f"no folder {parent}"
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "not writable"
    return None


def write_report(path: Path, report: dict[str, Any]) -> None:
    """The report as JSON at `path`, atomically (`fileio.atomic_write`): whole or not at all."""
    from svhn_jax.core.fileio import atomic_write
    text = json.dumps(report, indent=1) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


if __name__ == "__main__":
    sys.exit(main())
