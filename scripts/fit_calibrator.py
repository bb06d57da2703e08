"""Fits the whole-photo calibrator (`infer.whole_photo.Calibrator`) on held-out synthetic scenes and writes
``svhn_jax/pretrained/calibrator.json``: the weights over `whole_photo.FEATURES` and the default
``--min_confidence``. Never on real photos: the dev photos only check it (docs/peers.md).

  python scripts/fit_calibrator.py [--num=240] [--seed=135791] [--facades=0.5] [--target=0.98]
                                   [--features=FILE.npz] [--out=svhn_jax/pretrained/calibrator.json]

Scene ``i`` of the set ``--seed`` (`data.synth.scene.scene_photo`, never a training seed; drawn 1, 2, 4
or 8 times larger by ``i % 4``: SVHN-sized to phone-sized photos) is read by `whole_photo.collect_votes`
as ``predict`` reads it, whole and, when it holds a number, also with its box (what ``--box`` does): every
distinct reading of each read is one example, labelled right when it is the whole number. Scenes with an
even index fit a logistic regression (Newton steps, an L2 penalty `L2`, chosen by the odd scenes'
log-loss among 1e-2, 1e-3 and 1e-4); those with an odd index choose
the threshold: the lowest of 0.50, 0.51, ..., 0.99 at which the answers (each read's most probable
reading) are at least ``--target`` right, and report the precision and coverage there. ``--features``
keeps the examples (read again only when the file is missing), so a refit takes a second.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python scripts/fit_calibrator.py` from a checkout
    sys.path.insert(0, str(REPO))

SCALES = (1, 2, 4, 8)
L2 = 1e-3  # of the examples, on each weight but the bias (held-out scenes: log-loss 0.159; 1e-2: 0.204)


def examples(num: int, seed: int, facades: float) -> dict[str, np.ndarray]:
    """Every distinct reading of every read of the scenes: features, right, which read (group) it is in,
    whether that read had a box, and whether the read's scene holds a number."""
    from svhn_jax.core.cli import quiet_libraries
    from svhn_jax.data.synth.scene import scene_number, scene_photo
    from svhn_jax.infer import whole_photo
    from svhn_jax.infer.localiser import Localiser
    from svhn_jax.infer.reader import Reader

    quiet_libraries()
    reader, localiser, models = Reader.load(), Localiser.load(), whole_photo.text_models()
    feats, right, group, boxed, scene = [], [], [], [], []
    reads = 0
    for i in range(num):
        truth = scene_number(seed, i)
        photo, box = scene_photo(seed, i, SCALES[i % len(SCALES)], facades)
        asks = [None] + ([tuple(int(round(v)) for v in whole_photo.clip(photo, box))] if box is not None else [])
        for ask in asks:
            votes, _ = whole_photo.collect_votes(reader, localiser, photo, ask, True, models)
            texts, f = whole_photo.features(votes, photo.shape[0])
            feats.append(f)
            right += [t == truth for t in texts]
            group += [reads] * len(texts)
            boxed += [ask is not None] * len(texts)
            scene += [i] * len(texts)
            reads += 1
        if i % 20 == 19:
            print(f"{i + 1}/{num} scenes", file=sys.stderr, flush=True)
    return {"features": np.concatenate(feats) if feats else np.zeros((0, len(whole_photo.FEATURES))),
            "right": np.array(right, bool), "group": np.array(group, int), "boxed": np.array(boxed, bool),
            "scene": np.array(scene, int), "reads": np.array(reads)}


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 50) -> np.ndarray:
    """Logistic regression weights (the last feature is the bias, not penalised) by Newton's method."""
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2 * len(x))
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -40, 40)))
        grad = x.T @ (p - y) + penalty * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def answers(p: np.ndarray, right: np.ndarray, group: np.ndarray,
            num_reads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per read in `num_reads` (group ids): its answer's probability (0 when it read nothing) and whether right."""
    best_p, best_right = np.zeros(len(num_reads)), np.zeros(len(num_reads), bool)
    index = {g: k for k, g in enumerate(num_reads)}
    for k in np.argsort(-p, kind="stable"):
        r = index.get(int(group[k]))
        if r is not None and best_p[r] == 0.0 and p[k] > 0:
            best_p[r], best_right[r] = p[k], right[k]
    return best_p, best_right


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=240)
    parser.add_argument("--seed", type=int, default=135_791)
    parser.add_argument("--facades", type=float, default=0.5)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--l2", type=float, default=L2)
    parser.add_argument("--features", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "svhn_jax" / "pretrained" / "calibrator.json")
    args = parser.parse_args()
    from svhn_jax.infer import whole_photo

    start = time.perf_counter()
    if args.features is not None and args.features.exists():
        data = dict(np.load(args.features))
    else:
        data = examples(args.num, args.seed, args.facades)
        if args.features is not None:
            np.savez(args.features, **data)
    x, y, group, scene = data["features"], data["right"].astype(float), data["group"], data["scene"]
    fitting = scene % 2 == 0
    w = fit(x[fitting], y[fitting], args.l2)
    p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -40, 40)))
    held = ~fitting
    reads = np.unique(group[held])
    read_scene = {int(g): int(s) for g, s in zip(group, scene)}
    all_reads = np.array([g for g in range(int(data["reads"])) if read_scene.get(g, 1) % 2 == 1])
    conf, ok = answers(p[held], data["right"][held], group[held], all_reads)
    rows, chosen = [], None
    for t in np.round(np.arange(0.50, 1.0, 0.01), 2):
        answered = conf >= t
        precision = float(ok[answered].mean()) if answered.any() else None
        rows.append({"threshold": float(t), "answered": int(answered.sum()), "right": int(ok[answered].sum()),
                     "coverage": float(answered.mean()) if len(conf) else 0.0, "precision": precision})
        if chosen is None and precision is not None and precision >= args.target:
            chosen = rows[-1]
    chosen = chosen or rows[-1]
    report = {"features": list(whole_photo.FEATURES), "weights": [round(float(v), 6) for v in w],
              "min_confidence": chosen["threshold"],
              "fitted_on": {"scenes": args.num, "seed": args.seed, "facades": args.facades, "scales": list(SCALES),
                            "examples": int(fitting.sum()), "l2": args.l2, "held_out_reads": len(all_reads),
                            "held_out_reads_with_a_reading": len(reads),
                            "held_out_right_at_min_confidence": chosen, "held_out_right_best": float(ok.mean()),
                            "target": args.target},
              "command": "python scripts/fit_calibrator.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d"), "seconds": round(time.perf_counter() - start, 1)}
    text = json.dumps(report, indent=1)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
