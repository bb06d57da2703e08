"""Copies a trained run's latest checkpoint into the package as shipped weights (svhn_jax/pretrained/NAME/).

  python scripts/export_pretrained.py --workdir=workdirs/reader --name=reader \
      --command="python -m svhn_jax.main --config=configs/reader.py --workdir=workdirs/reader"

Prints the ``info.json`` written beside the weights (step, params_sha256, the training command).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datetime
from typing import Any

import flax.serialization
import jax

from svhn_jax import pretrained
from svhn_jax.core import workdir as workdir_lib
from svhn_jax.core.fileio import atomic_write
from svhn_jax.infer import weights


def export(workdir: str | Path, name: str, command: str) -> dict[str, Any]:
    """Copies the latest checkpoint's variables and config of `workdir` into ``pretrained/<name>/``."""
    config, _, variables = weights.from_workdir(workdir)
    variables = jax.device_get(variables)
    steps = [int(p.name) for p in (Path(workdir) / "checkpoints").iterdir() if p.name.isdigit()]
    metrics = Path(workdir) / "metrics.jsonl"
    records = [json.loads(line) for line, _ in (workdir_lib.read_metrics(metrics) if metrics.exists() else [])]
    final = [r for r in records if r["split"] == "eval" and r["step"] == max(steps)]
    final_eval = {k: v for k, v in (final[-1] if final else {}).items() if k.startswith("eval_")}
    info = {"params_sha256": workdir_lib.tree_sha256(variables["params"]), "step": max(steps), "command": command,
            "exported": datetime.date.today().isoformat(),
            "synthetic_test_sequence_accuracy": final_eval.get("eval_sequence_accuracy"),
            "synthetic_test": final_eval}
    out = pretrained.folder(name)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "variables.msgpack", lambda p: p.write_bytes(flax.serialization.msgpack_serialize(variables)))
    atomic_write(out / "config.json", lambda p: p.write_text(config.to_json_best_effort(indent=2) + "\n"))
    atomic_write(out / "info.json", lambda p: p.write_text(json.dumps(info, indent=2) + "\n"))
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--name", default="reader")
    parser.add_argument("--command", required=True, help="The command that trained the run (recorded).")
    args = parser.parse_args()
    print(json.dumps(export(args.workdir, args.name, args.command), indent=2))


if __name__ == "__main__":
    main()
