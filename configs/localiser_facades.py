"""The shipped localiser fine-tuned on scenes where half the walls are house fronts (doors, windows with
bars, shutters, lamps, mailboxes, siding, plants: `data/synth/facade.py`), the things its wrong boxes
land on in ordinary photos.

  python -m svhn_jax.main --config=configs/localiser_facades.py --workdir=workdirs/localiser_facades

Fresh scenes (``scene_seed = 100``: seeds the shipped localiser never saw), rendered once into
``<data_dir>/scenes_facades50/``. Resumable: the same command continues the run.
"""
from configs import localiser


def get_config():
    c = localiser.get_config()
    c.init_from = "pretrained:localiser"
    c.scene_facades = 0.5
    c.scene_seed = 100
    c.learning_rate = 2e-4
    c.lr_decay_steps = 1000
    c.lr_decay_rate = 0.7
    c.num_train_steps = 4000
    c.eval_every_steps = 500
    return c
