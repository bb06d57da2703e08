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

from svhn_jax import pretrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--name", default="reader")
    parser.add_argument("--command", required=True, help="The command that trained the run (recorded).")
    args = parser.parse_args()
    print(json.dumps(pretrained.export(args.workdir, args.name, args.command), indent=2))


if __name__ == "__main__":
    main()
