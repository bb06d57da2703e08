"""A tiny configuration for the tests: a few steps on a few hundred synthetic images."""
from svhn_jax.core import config


def get_config():
    c = config.reader()
    c.dataset = "synthetic"
    c.num_synthetic_train = 256
    c.num_synthetic_test = 100
    c.batch_size = 16
    c.eval_batch_size = 32
    c.num_train_steps = 8
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.checkpoint_every_steps = 4
    c.learning_rate = 1e-3
    return c
