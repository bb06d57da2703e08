"""The seed's benchmark on real SVHN with 2,000 real photos: the seed ConvNet pretrained on renders,
fine-tuned on the real train photos, evaluated on the real test photos.

The seed report's network (`models/seed_cnn.py`, 5 blank heads) and preprocessing (union of the digit
boxes +30 %, 32x32 grey, mean removed: here each crop standardised), started from
`svhn_jax/pretrained/seed_renders` (the same network trained on 60,000 renders only:
configs/seed_renders.py) and fine-tuned on the first 2,000 official train photos with the renders'
on-device augmentation (zoom, rotation, shift, contrast, polarity, noise) at a lower learning rate:
2,000 photos are 31 batches, so the prior from the renders and the augmentation do most of the work.
A few CPU minutes (docs/results.md, "Real SVHN"). Resumable: the same command continues the run.

  python -m svhn_jax.prepare --dataset=svhn --source_dir=../shared/data/svhn_real --splits=train,test \\
      --recipe=seed32_grey --data_dir=D
  python -m svhn_jax.main --config=configs/seed_real.py --config.data_dir=D --workdir=W

`--config.train_limit=N` trains on the first N train photos only (the data-efficiency runs);
`--config.init_from=` (empty) trains the same recipe from a random init.
"""
from svhn_jax.core import config


def get_config():
    c = config.reader()
    c.model = "seed_cnn"
    c.head = "blank"
    c.dataset = "svhn"
    c.recipe = "seed32_grey"
    c.train_splits = ("train",)
    c.eval_split = "test"
    c.init_from = "pretrained:seed_renders"
    c.augment = True
    c.standardize = True   # as the pretrained weights saw their inputs
    c.batch_size = 64
    c.learning_rate = 3e-4
    c.lr_decay_steps = 500
    c.lr_decay_rate = 0.7
    c.lr_staircase = True
    c.num_train_steps = 2000
    c.log_every_steps = 100
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    return c
