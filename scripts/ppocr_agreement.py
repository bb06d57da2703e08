"""How closely the imported PP-OCRv6 small (JAX) follows onnxruntime on the wheel's own ONNX files.

  python scripts/ppocr_agreement.py --photos=samples --labels=samples/labels.csv [--max_side=960] [--json_out=F]

For each photo of `--photos` (a folder): the text detector's probability map in JAX against
onnxruntime on ``rapidocr/models/PP-OCRv6_det_small.onnx``, the photo resized as RapidOCR 3.10 resizes
it (its longest side cut to `--max_side` first, 2000 as RapidOCR). For each labelled box of `--labels`
(``file,number,x,y,w,h``, as scripts/svhn_real_labels.py writes): the digit line reader's probabilities
against the softmax over the kept columns (blank, 0-9) of onnxruntime's logits on
``PP-OCRv6_rec_small.onnx``, one line a batch. Prints (and writes atomically) JSON: the largest and the
mean absolute difference of each, the photos and lines compared, and how often the greedy CTC readings
agree. Needs the [peers] and [onnx] extras (rapidocr's files, onnx, onnxruntime).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as the docs write it, from a checkout
    sys.path.insert(0, str(REPO))

from svhn_jax.core.fileio import atomic_write
from svhn_jax.infer import photos as photo_files
from svhn_jax.infer import text_models


def original(role: str, extra_outputs: tuple[str, ...] = ()):
    """(onnx model, onnxruntime session) of the wheel's own file for `role`."""
    import onnx
    import onnxruntime

    from svhn_jax.cli.import_ppocr import ppocr_file
    model = onnx.load(str(ppocr_file(role)[0]))
    for name in extra_outputs:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model, onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def greedy(probabilities: np.ndarray) -> str:
    """CTC greedy decoding of one line's [T, 11] probabilities to its digits."""
    best = probabilities.argmax(-1)
    return "".join(str(c - 1) for i, c in enumerate(best) if c and (i == 0 or c != best[i - 1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="a folder of photos for the detector")
    parser.add_argument("--labels", default="", help="file,number,x,y,w,h CSV: boxes for the line reader")
    parser.add_argument("--max_side", type=int, default=2000, help="the detector's longest side, at most")
    parser.add_argument("--json_out", default="")
    args = parser.parse_args()
    if args.json_out and Path(args.json_out).is_dir():
        parser.error(f"--json_out={args.json_out} is a folder: name a file")
    files = [path for path, error in photo_files.find_images([args.photos]) if error is None]
    detector = text_models.TextDetector.load()
    _, det_session = original("text_detector")
    det = []
    for path in files:
        x, _ = text_models.detector_input(photo_files.load_image(path), max_side_len=args.max_side)
        det.append(float(np.abs(detector(x) - det_session.run(None, {"x": x})[0]).max()))
    lines = []
    if args.labels:
        reader = text_models.LineReader.load()
        shipped = json.loads((text_models.LINE_READER_DIR / "graph.json").read_text())
        logits_name = next(n["inputs"][0] for n in shipped["nodes"] if n["outputs"] == ["logits"])
        _, rec_session = original("line_reader", (logits_name,))
        keep = reader.info["original_classes"]
        folder = Path(args.labels).parent if not Path(args.photos).is_dir() else Path(args.photos)
        with open(args.labels, newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            image = photo_files.load_image(folder / row["file"])
            x, y, w, h = (max(0, round(float(row[k]))) for k in "xywh")
            batch = text_models.line_batch([image[y:y + h, x:x + w]])
            cut = rec_session.run(None, {"x": batch})[1][:, :, keep]
            want = np.exp(cut - cut.max(-1, keepdims=True))
            want /= want.sum(-1, keepdims=True)
            got = reader(batch)
            lines.append((float(np.abs(got - want).max()), greedy(got[0]) == greedy(want[0])))
    result = {
        "photos": len(det), "detector_max_abs_diff": max(det, default=None),
        "detector_mean_of_max_abs_diff": float(np.mean(det)) if det else None,
        "lines": len(lines), "line_reader_max_abs_diff": max((d for d, _ in lines), default=None),
        "line_reader_mean_of_max_abs_diff": float(np.mean([d for d, _ in lines])) if lines else None,
        "line_readings_equal": sum(same for _, same in lines),
        "command": " ".join(["python", "scripts/ppocr_agreement.py", *sys.argv[1:]]),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json_out:
        atomic_write(args.json_out, lambda tmp: tmp.write_text(text + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
