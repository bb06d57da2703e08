"""The seed report's recipe on real SVHN format 1: the small ConvNet on 32x32 greyscale crops.

Adam, lr 7.5e-4 x 0.95 every 5,000 steps (staircase), batch 64, 5 blank heads: the recipe the
project replicates first. The report reached 85.05 % sequence / 91.5 % digit accuracy on the test
set; this code has not run it on the real data yet (docs/results.md).

Prepare the data once (downloads 680 MB), then train:
  python -m svhn_jax.prepare --dataset=svhn --splits=train,test --recipe=seed32_grey
  python -m svhn_jax.main --config=configs/seed.py --workdir=workdirs/seed
"""
from svhn_jax.core import config


def get_config():
    c = config.reader()
    c.dataset = "svhn"
    c.recipe = "seed32_grey"
    c.train_splits = ("train",)
    c.eval_split = "test"
    c.batch_size = 64
    c.learning_rate = 7.5e-4
    c.lr_decay_steps = 5000
    c.lr_decay_rate = 0.95
    c.lr_staircase = True
    c.num_train_steps = 100_000
    c.eval_every_steps = 5000
    c.checkpoint_every_steps = 5000
    return c
