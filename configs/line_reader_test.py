"""A tiny line_reader run for the tests: a few steps on a few dozen rendered lines (`tasks/line_reader.py`)."""
from svhn_jax.core import config


def get_config():
    c = config.line_reader()
    c.num_line_renders = 16
    c.num_line_renders_test = 8
    c.batch_size = 4
    c.eval_batch_size = 8
    c.learning_rate = 1e-4
    c.lr_decay_steps = 1000
    c.num_train_steps = 6
    c.log_every_steps = 1
    c.eval_every_steps = 3
    c.checkpoint_every_steps = 3
    return c
