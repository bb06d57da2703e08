"""The shipped reader: trained only on synthetic house numbers, for real photos (32x32 grey crops).

  python -m svhn_jax.main --config=configs/reader.py --workdir=workdirs/reader

A compact VGG-style ConvNet (`models/reader_cnn.py`, no BatchNorm: both CPU cores train it through
host_reduce) on the seed recipe's crops (union box +30 %, 32x32 grey), a large pre-rendered synthetic
set, strong on-device augmentation (zoom, rotation, shift, contrast, polarity, noise: real boxes are
drawn loosely) and per-image standardisation. Resumable: the same command continues the run.
Judged on real photos, not on synthetic accuracy (README, "Reading real photos").
"""
from svhn_jax.core import config


def get_config():
    c = config.reader()
    c.model = "reader_cnn"
    c.head = "length"
    c.dropout_rate = 0.3
    c.dataset = "synthetic"
    c.recipe = "seed32_grey"
    c.num_synthetic_train = 60_000
    c.num_synthetic_test = 3000
    c.augment = True
    c.standardize = True
    c.batch_size = 64
    c.learning_rate = 1e-3
    c.lr_decay_steps = 4000
    c.lr_decay_rate = 0.8
    c.num_train_steps = 40_000
    c.log_every_steps = 200
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 500
    return c
