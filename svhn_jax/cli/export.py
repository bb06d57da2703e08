"""Exports the reader and the localiser as ONNX graphs, to read photos without JAX (`predict --backend=onnx`).

  python -m svhn_jax.export --format=onnx --out=DIR [--workdir=W] [--localiser=L|none] [--overwrite]

writes ``DIR/reader.onnx`` (the reader of run W, default the shipped one), ``DIR/localiser.onnx`` (the
localiser of run L, default the shipped one; ``none``: no localiser) and ``DIR/info.json`` (each graph's
source and ``params_sha256``, input shapes, preprocessing, opset, exporter and versions). Files in DIR
that an export did not write (a ``reader.onnx`` of your own, an ``info.json`` that is not an export's
record) and the package's shipped graphs (``svhn_jax/pretrained/onnx``) are kept, the export refused
in one line, unless ``--overwrite``;
`svhn_jax.infer.onnx_export` says what the graphs compute. Then:

  python -m svhn_jax.predict --backend=onnx --onnx_dir=DIR PHOTOS

Needs the ``[onnx]`` extra and the exporter, installed apart: ``pip install --no-deps jax2onnx==0.17.1``
(docs/onnx.md). A user error (exporter missing, --out unwritable, a workdir of the other kind or with a
broken config.json, a file in --out it would replace unasked) is one line, ``error: ...``, exit status 1.
"""
from __future__ import annotations

from pathlib import Path

from absl import flags
from absl import logging as absl_logging

from svhn_jax.core.cli import cli, quiet_libraries, run_program
from svhn_jax.core.errors import UserError

FLAGS = flags.FLAGS
FORMATS = ("onnx",)


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program (importing this module defines none)."""
    flags.DEFINE_string("format", "onnx", f"The export format: {', '.join(FORMATS)}.")
    flags.DEFINE_string("out", "", "Folder to write reader.onnx, localiser.onnx and info.json into (created).")
    flags.DEFINE_string("workdir", "", "A reader run's working directory ('' -> the shipped reader).")
    flags.DEFINE_string("localiser", "", "A localiser run's working directory ('' -> the shipped localiser, "
                        "'none' -> export the reader only).")
    flags.DEFINE_boolean("overwrite", False, "Replace graphs and an info.json in --out that this export did not "
                         "write (a file of your own, the package's shipped graphs); without it they are kept and "
                         "the export stops in one line.")


@cli
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.format not in FORMATS:
        raise UserError(f"--format={FLAGS.format}: cannot export to that; choose one of {', '.join(FORMATS)}")
    if not FLAGS.out:
        raise UserError("--out=DIR is required (the folder that receives the graphs)")
    if not FLAGS["verbosity"].present:  # jax2onnx logs its parameters at INFO
        absl_logging.set_verbosity(absl_logging.WARNING)
    quiet_libraries()
    from svhn_jax.infer import onnx_export
    with_localiser = FLAGS.localiser != "none"
    entries = onnx_export.export_all(FLAGS.out, FLAGS.workdir or None,
                                     FLAGS.localiser if with_localiser else None, with_localiser,
                                     overwrite=FLAGS.overwrite)
    for role, entry in entries.items():
        print(f"{role}: {Path(FLAGS.out) / entry['file']} ({entry['bytes'] / 1e6:.2f} MB, "
              f"{entry['export_seconds']:.1f} s) from {entry['source']}")
    without = "" if with_localiser else " --localiser=none"
    print(f"read photos with them: python -m svhn_jax.predict --backend=onnx --onnx_dir={FLAGS.out}{without} PHOTOS")


def run_as_program() -> None:
    """Runs the command (`python -m svhn_jax.export`)."""
    define_flags()
    run_program(main)

