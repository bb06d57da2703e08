"""The seed ConvNet pretrained on renders only, for real SVHN fine-tunes (configs/seed_real.py).

The seed report's network (`models/seed_cnn.py`, 5 blank heads) on the seed recipe's crops (union box
+30 %, 32x32 grey) of 60,000 offline renders (the shipped reader's set), with the reader's on-device
augmentation (zoom, rotation, shift, contrast, polarity, noise: real boxes are drawn loosely) and
per-image standardisation, so its features meet real photos half-way. Shipped as
`svhn_jax/pretrained/seed_renders` (`--config.init_from=pretrained:seed_renders`); measured in
docs/results.md ("Real SVHN").

  python -m svhn_jax.main --config=configs/seed_renders.py --workdir=workdirs/seed_renders
"""
from svhn_jax.core import config


def get_config():
    c = config.reader()
    c.model = "seed_cnn"
    c.head = "blank"
    c.dataset = "synthetic"
    c.recipe = "seed32_grey"
    c.num_synthetic_train = 60_000
    c.num_synthetic_test = 3000
    c.augment = True
    c.standardize = True
    c.batch_size = 64
    c.learning_rate = 1e-3
    c.lr_decay_steps = 1500
    c.lr_decay_rate = 0.8
    c.lr_staircase = True
    c.num_train_steps = 6000
    c.log_every_steps = 200
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 500
    return c
