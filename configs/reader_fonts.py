"""The shipped reader's second stage: `configs/reader.py`'s weights fine-tuned on synthetic numbers
drawn in many more faces (``synthetic_fonts = "open"``: matplotlib's faces plus the open-licence faces
of the font packages in `data/synth/materials.OPEN_FONTS`: serif, condensed, rounded, hand-drawn).

  python -m svhn_jax.main --config=configs/reader.py --workdir=workdirs/reader --config.num_train_steps=22000
  python -m svhn_jax.main --config=configs/reader_fonts.py --workdir=workdirs/reader_fonts

Fresh images: it trains on the ``extra`` split (seed 3), which stage 1 never drew, and evaluates on a
test split in the same faces. Resumable: the same command continues the run.
"""
from configs import reader


def get_config():
    c = reader.get_config()
    c.init_from = "workdirs/reader"  # stage 1 (or "pretrained:reader" while the shipped reader is stage 1)
    c.synthetic_fonts = "open"
    c.train_splits = ("extra",)
    c.learning_rate = 3e-4
    c.lr_decay_steps = 2000
    c.lr_decay_rate = 0.8
    c.num_train_steps = 10_000
    return c
