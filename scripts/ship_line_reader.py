"""Exports a line_reader fine-tune in the shipped format, and reads real photos' official-box lines with any weights.

  # a run's latest checkpoint -> graph.json + params.msgpack + info.json (the format of pretrained/line_reader)
  python scripts/ship_line_reader.py export --workdir=/work/runs/line_reader_ft --out=DIR [--dtype=float16]
  # line accuracy of weights folders ("shipped" = svhn_jax/pretrained/line_reader) on an SVHN format-1 folder
  python scripts/ship_line_reader.py evaluate --photos=../shared/data/svhn_real/test --weights=shipped,DIR

`export` refuses an existing --out (nothing is replaced: ship a candidate by moving its folder over
``svhn_jax/pretrained/line_reader`` by hand once it reads the dev photos better), writes into a
temporary folder renamed into place when whole, and records in info.json the imported weights' own
record (source wheel, sha256, licence) with the fine-tune's: the workdir, step, both params_sha256
(the run's and the flat file's), the training command and the export command. `evaluate` cuts each
photo's digits' union box as the training lines are cut (`data.lines.cut_line`, 15 % of the height
each side) and reads it through the pipeline's own path (`infer.line_reading.read_lines`: widths
320/480/..., exact zero padding, greedy CTC), then prints and optionally writes (--json_out) the
whole-line accuracy of each weights folder. Evaluation only: never train on those photos.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from svhn_jax.core.cli import cli
from svhn_jax.core.errors import UserError

SHIPPED = "shipped"
EXPORT_COMMAND = "python scripts/ship_line_reader.py export"


def restore_params(workdir: Path) -> tuple[Any, dict[str, np.ndarray], int, dict[str, Any]]:
    """(config, flat float32 params, step, final metrics or {}) of a line_reader run's latest good checkpoint."""
    import jax
    import orbax.checkpoint as ocp

    from svhn_jax.core import config as config_lib
    from svhn_jax.core import workdir as workdir_lib
    from svhn_jax.core.state import create_train_state, make_optimizer
    from svhn_jax.models import create_model
    if not (workdir / "config.json").is_file():
        raise UserError(f"--workdir={workdir} holds no run (no config.json)")
    config = config_lib.saved(workdir / "config.json")
    if config_lib.task_of(config) != "line_reader":
        raise UserError(f"--workdir={workdir} holds a {config_lib.task_of(config)} run, not a line_reader one")
    manager = ocp.CheckpointManager((workdir / "checkpoints").absolute(),
                                    options=ocp.CheckpointManagerOptions(read_only=True))
    model = create_model(config)
    tx, _ = make_optimizer(config)
    like = jax.eval_shape(lambda r: create_train_state(r, model, tx, (48, 320, 3)), jax.random.key(0))
    state = workdir_lib.restore_latest(manager, like, jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    if state is None:
        raise UserError(f"--workdir={workdir} holds no checkpoint")
    final_path = workdir / "final_metrics.json"
    final = json.loads(final_path.read_text()) if final_path.is_file() else {}
    params = {k: np.asarray(v, np.float32) for k, v in jax.device_get(state.params)["graph"].items()}
    return config, params, int(state.step), final if final.get("step") == int(state.step) else {}


def export(workdir: Path, out: Path, dtype: str, command: str) -> dict[str, Any]:
    """Writes the fine-tune of `workdir` into the new folder `out`; returns its info."""
    if out.exists():
        raise UserError(f"--out={out} exists; give a new folder (nothing is replaced)")
    from svhn_jax.core import workdir as workdir_lib
    from svhn_jax.core.fileio import atomic_write
    from svhn_jax.infer.text_models import LINE_READER_DIR
    from svhn_jax.models import graph_io
    config, params, step, final = restore_params(workdir)
    start = Path(config.line_reader_weights or LINE_READER_DIR)
    graph = graph_io.read_json(start / "graph.json")
    base = json.loads((start / "info.json").read_text())
    run_sha = workdir_lib.tree_sha256({"graph": params})
    params = {k: v.astype(dtype) for k, v in params.items()}
    for entry in graph["params"].values():
        entry["dtype"] = dtype
    info = {**base, "model": base["model"] + ", fine-tuned on house-number lines (svhn_jax task line_reader)",
            "params_sha256": graph_io.params_sha256(params), "dtype": dtype,
            "fine_tune": {"from_params_sha256": base["params_sha256"], "workdir": str(workdir), "step": step,
                          "run_params_sha256": run_sha, "final_metrics": {k: v for k, v in final.items()
                                                                          if k.startswith("eval_")},
                          "train_command": "python -m svhn_jax.main --config=configs/line_reader.py "
                                           f"--workdir={workdir}",
                          "exported": datetime.date.today().isoformat()},
            "command": command}
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True)
        atomic_write(tmp / "graph.json", lambda p: p.write_text(graph_io.to_json(graph)))
        atomic_write(tmp / "params.msgpack", lambda p: p.write_bytes(graph_io.params_bytes(params)))
        atomic_write(tmp / "info.json", lambda p: p.write_text(json.dumps(info, indent=1) + "\n"))
        tmp.rename(out)
    except OSError as e:
        raise UserError(f"--out={out}: cannot write it ({e.strerror or e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def official_lines(photos: Path, limit: int = 0) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(line crops, truths, file names) of an SVHN format-1 folder (or a folder of real_photos_dev, its
    boxes in the labels.json beside it), cut as `data.lines` cuts them."""
    from PIL import Image

    from svhn_jax.data.lines import cut_line
    from svhn_jax.data.svhn.digitstruct import read_digitstruct
    mat, labels = photos / "digitStruct.mat", photos.parent / "labels.json"
    if mat.is_file():
        entries = [(e.name, "".join(str(b.label % 10) for b in e.boxes),
                    [[b.left, b.top, b.width, b.height] for b in e.boxes]) for e in read_digitstruct(mat)]
    elif labels.is_file() and photos.name in (table := json.loads(labels.read_text())):
        entries = [(name, row["label"], [[b["xmin"], b["ymin"], b["xmax"] - b["xmin"], b["ymax"] - b["ymin"]]
                                         for b in row["boxes"]])
                   for name, row in sorted(table[photos.name].items(), key=lambda kv: int(kv[0].split(".")[0]))]
    else:
        raise UserError(f"--photos={photos}: no digitStruct.mat there, nor boxes for it in {labels}")
    crops, truths, names = [], [], []
    for name, truth, boxes in entries[:limit or None]:
        with Image.open(photos / name) as im:
            photo = np.asarray(im.convert("RGB"))
        crops.append(cut_line(photo, np.array(boxes, np.float64), 0.15))
        truths.append(truth)
        names.append(name)
    return crops, truths, names


def evaluate(photos: Path, folders: list[str], limit: int = 0) -> dict[str, Any]:
    """{weights: {line_accuracy, right, lines, params_sha256, wrong: [[file, truth, reading], ...]}}."""
    from svhn_jax.infer import line_reading
    from svhn_jax.infer.text_models import LineReader
    crops, truths, names = official_lines(photos, limit)
    results = {}
    for folder in folders:
        reader = LineReader.load(None if folder == SHIPPED else folder)
        readings = [r.text for r in line_reading.read_lines(reader, crops)]
        right = [a == b for a, b in zip(readings, truths)]
        results[folder] = {"line_accuracy": float(np.mean(right)), "right": int(sum(right)), "lines": len(right),
                           "params_sha256": reader.info["params_sha256"],
                           "wrong": [[n, t, r] for n, t, r, ok in zip(names, truths, readings, right) if not ok]}
    return results


@cli
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    ex = sub.add_parser("export", help="a run's latest checkpoint -> a weights folder in the shipped format")
    ex.add_argument("--workdir", required=True)
    ex.add_argument("--out", required=True, help="a new folder")
    ex.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    ev = sub.add_parser("evaluate", help="whole-line accuracy on an SVHN format-1 folder's official boxes")
    ev.add_argument("--photos", required=True)
    ev.add_argument("--weights", default=SHIPPED, help=f"comma-separated weights folders ({SHIPPED!r}: the shipped)")
    ev.add_argument("--limit", type=int, default=0, help="only the first N photos (0: all)")
    ev.add_argument("--json_out", default="")
    args = parser.parse_args()
    if args.what == "export":
        command = " ".join([EXPORT_COMMAND, *(shlex.quote(a) for a in sys.argv[2:])])
        info = export(Path(args.workdir), Path(args.out), args.dtype, command)
        size = sum(p.stat().st_size for p in Path(args.out).iterdir())
        print(f"{args.out}: step {info['fine_tune']['step']}, {size / 1e6:.2f} MB, "
              f"params_sha256 {info['params_sha256']}")
        return
    results = evaluate(Path(args.photos), args.weights.split(","), args.limit)
    for folder, r in results.items():
        print(f"{folder}: {r['right']}/{r['lines']} lines right ({100 * r['line_accuracy']:.1f} %), "
              f"params_sha256 {r['params_sha256'][:12]}")
    if args.json_out:
        from svhn_jax.core.fileio import atomic_write
        atomic_write(Path(args.json_out), lambda p: p.write_text(json.dumps(results, indent=1) + "\n"))


if __name__ == "__main__":
    main()
