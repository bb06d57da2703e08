"""The seed report's first step: single cropped digits, SVHN "format 2" (TFDS ``svhn_cropped``).

Each 32x32 digit is a length-1 sequence in the data contract, so the seed ConvNet, its 5 blank heads,
the metrics and the reports apply unchanged (the 4 later heads learn to say "blank"). Greyscale by
default; ``--config.recipe=seed32_rgb`` keeps the colour (the first conv infers its input channels).
No augmentation flips or crops the digits.

The first run builds the TFDS copy (downloads train, test and extra, about 1.5 GB; tensorflow-datasets
4.9.10 needs TensorFlow for that one build: ``pip install tensorflow-cpu``), then writes the splits:
  python -m svhn_jax.prepare --dataset=svhn_cropped --splits=train,test --recipe=seed32_grey
  python -m svhn_jax.main --config=configs/single_digit.py --workdir=workdirs/single_digit
(`main` also prepares missing splits itself.) Add the 531k extra digits with
``--config.train_splits=train,extra``.
"""
from svhn_jax.core import config


def get_config():
    c = config.reader()
    c.model = "seed_cnn"
    c.head = "blank"
    c.dataset = "svhn_cropped"
    c.recipe = "seed32_grey"      # seed32_grey | seed32_rgb
    c.train_splits = ("train",)   # 73,257 digits; ("train", "extra") adds 531,131
    c.eval_split = "test"         # 26,032 digits
    c.crop_size = 0
    c.batch_size = 64
    c.learning_rate = 7.5e-4
    c.lr_decay_steps = 5000
    c.lr_decay_rate = 0.95
    c.lr_staircase = True
    c.num_train_steps = 30_000    # about 26 epochs of train
    c.eval_every_steps = 5000
    c.checkpoint_every_steps = 5000
    return c
