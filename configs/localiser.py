"""The shipped localiser: finds the house number in a whole photo (`tasks/localiser.py`, `infer/localiser.py`).

  python -m svhn_jax.main --config=configs/localiser.py --workdir=workdirs/localiser

A small fully convolutional heat-map network (`models/localiser.py`) on 128 x 128 letterboxed
photos, trained on synthetic whole scenes (`data/synth/scene.py`: SVHN-like photos, walls with the
number anywhere at 5-90 % of the width, stacked digits, night, tilted photos, scenes without a
number), rendered once into the data folder. Resumable: the same command continues the run.
"""
from svhn_jax.core import config


def get_config():
    c = config.localiser()
    c.num_scenes_train = 24_000
    c.num_scenes_test = 1000
    c.batch_size = 64
    c.learning_rate = 1e-3
    c.lr_decay_steps = 1000
    c.lr_decay_rate = 0.7
    c.lr_staircase = False
    c.num_train_steps = 6000
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 250
    return c
