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

`--config=configs/seed_real.py:K` mixes renders into the fine-tune: the real train file K times and
D/synthetic/seed32_grey/train.h5 (`prepare --dataset=synthetic --splits=train --num_examples=30000
--recipe=seed32_grey --data_dir=D`), as dataset=hdf5 with the real test file for evaluation. Measured
with K=10 (20,000 real rows + 30,000 renders): no better than real alone at this step budget
(docs/results.md), so the default stays K=0.
"""
import ml_collections

from svhn_jax.core import config
from svhn_jax.data import paths

RENDERS = ("synthetic", "train")  # the renders' train split (`prepare --dataset=synthetic`)


def mix_renders(c: ml_collections.ConfigDict, real_copies: int) -> ml_collections.ConfigDict:
    """`c` (dataset=svhn, seed32_grey) trained on its real train split `real_copies` times plus the renders'
    train split, both under ``c.data_dir``: dataset=hdf5 with paths that follow a later
    ``--config.data_dir=D`` (ml_collections field references). `real_copies` 0 leaves `c` as it is."""
    if real_copies < 0:
        raise ValueError(f"the number of real copies must be 0 or more, got {real_copies}")
    if not real_copies:
        return c
    if not c.data_dir:
        c.data_dir = str(paths.default_data_dir())
    root = c.get_ref("data_dir")
    file = lambda dataset, split: root + f"/{dataset}/{c.recipe}/{split}.h5"
    train = file(c.dataset, c.train_splits[0])
    for _ in range(real_copies - 1):
        train = train + "," + file(c.dataset, c.train_splits[0])
    c.train_file = train + "," + file(*RENDERS)
    c.eval_file = file(c.dataset, c.eval_split)
    c.dataset = "hdf5"
    return c


def get_config(real_copies: str = "0") -> ml_collections.ConfigDict:
    """The recipe; ``real_copies`` > 0 (``--config=configs/seed_real.py:K``) mixes renders in (`mix_renders`)."""
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
    return mix_renders(c, int(real_copies))
