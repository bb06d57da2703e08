"""The seed ConvNet on offline synthetic house numbers: the run a fresh machine can do first.

Renders 20,000 training and 2,000 held-out house numbers on first use (no download, no network),
then trains the seed report's small ConvNet on 32x32 greyscale crops for 6,000 steps of 64 and
evaluates it: a few minutes on a 2-core CPU, enough to read most of the held-out numbers, so it
checks the whole path (data, training, checkpoints, evaluation) end to end. Measured:
docs/results.md.

  python -m svhn_jax.main --config=configs/quickstart.py --workdir=workdirs/quickstart
"""
from svhn_jax.core import config


def get_config():
    c = config.reader()
    c.dataset = "synthetic"
    c.recipe = "seed32_grey"
    c.num_synthetic_train = 20000
    c.num_synthetic_test = 2000
    c.batch_size = 64
    c.learning_rate = 1e-3
    c.lr_decay_steps = 1000
    c.lr_decay_rate = 0.9
    c.num_train_steps = 6000
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 1000
    c.log_every_steps = 100
    return c
