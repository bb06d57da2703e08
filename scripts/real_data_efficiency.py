"""The data-efficiency figure of docs/results.md: sequence accuracy on the real SVHN test photos against
the number of real train photos a run used, with and without synthetic pretraining.

  python scripts/real_data_efficiency.py --out=docs/figures/real_data_efficiency.png \
      --pretrained=0:W0,250:W1,... --scratch=250:W5,...

Each ``N:WORKDIR`` names a finished run (its final_metrics.json) that trained on the first N real photos.
Prints the markdown table (N, accuracy with and without pretraining, steps, params_sha256) and writes the PNG.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state


def parse_runs(text: str) -> dict[int, dict]:
    """``N:WORKDIR,...`` -> {N: final metrics of WORKDIR}."""
    runs = {}
    for item in filter(None, text.split(",")):
        n, _, workdir = item.partition(":")
        runs[int(n)] = json.loads((Path(workdir) / "final_metrics.json").read_text())
    return dict(sorted(runs.items()))


def table(pretrained: dict[int, dict], scratch: dict[int, dict]) -> list[str]:
    """Markdown rows: N, sequence accuracy (and digit accuracy) with / without pretraining."""
    cell = lambda m: (f"{100 * m['eval_sequence_accuracy']:.1f} % ({100 * m['eval_digit_accuracy']:.1f} %), "
                      f"{m['step']} steps" if m else "-")
    lines = ["| real train photos | renders-pretrained, fine-tuned: sequence (digit) "
             "| from scratch: sequence (digit) |",
             "| ---: | ---: | ---: |"]
    for n in sorted(pretrained.keys() | scratch.keys()):
        lines.append(f"| {n:,} | {cell(pretrained.get(n))} | {cell(scratch.get(n)) if n else '0 (untrained)'} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", default="", help="N:WORKDIR,... runs fine-tuned from renders-pretrained")
    parser.add_argument("--scratch", default="", help="N:WORKDIR,... runs from a random init")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="seed ConvNet on real SVHN test photos (200)")
    args = parser.parse_args()
    try:
        pretrained, scratch = parse_runs(args.pretrained), parse_runs(args.scratch)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: cannot read a run ({e})", file=sys.stderr)
        return 1
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for runs, label, style in ((pretrained, "pretrained on renders, fine-tuned", "o-"),
                               (scratch, "from scratch (random init)", "s--")):
        if runs:
            ax.plot(list(runs), [100 * m["eval_sequence_accuracy"] for m in runs.values()], style, label=label)
    ax.set_xlabel("real train photos used (first N of official train)")
    ax.set_ylabel("sequence accuracy on real test (%)")
    ax.set_title(args.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial")
    fig.savefig(partial, dpi=120, format="png")
    partial.replace(args.out)  # never a half-written figure
    print("\n".join(table(pretrained, scratch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
