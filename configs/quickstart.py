"""A few minutes on a laptop CPU: the seed ConvNet on offline synthetic house numbers.

  python -m svhn_jax.main --config=configs/quickstart.py --workdir=workdirs/quickstart
"""
from configs import default


def get_config():
    c = default.get_config()
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
