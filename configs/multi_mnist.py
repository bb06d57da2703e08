"""The seed report's second step: 64x64 images of 1-5 MNIST digits (`svhn_jax.data.multi_mnist`).

A stepping stone between single digits and house numbers: sequences of known digits, laid out in a
row. The splits are composed on first use at ``<data_dir>/multi_mnist/multi64_grey/{train,test}.h5``
(and recomposed when these settings change): the training split from the training digits, the
test split only from held-out digits, so the test measures reading digits never seen. Source
digits: TFDS mnist (train / test splits; its first build needs the network and, in
tensorflow-datasets 4.9.10, TensorFlow), or an .npz with ``images`` uint8 [N,28,28] and ``labels``
via ``mnist_npz``, whose digits are split by a fixed permutation into 1 - holdout_fraction for
training and holdout_fraction for test. The model is the seed ConvNet (at 64x64 its dense layer
sees 16*16*64 features); no random crop, which could cut off a digit that sits at the border.
Measured: docs/results.md.

Offline, on the 5,000 digits of mnist_5k (4,000 train / 1,000 held-out test digits):
  python -m svhn_jax.main --config=configs/multi_mnist.py --workdir=workdirs/multi_mnist \\
      --config.mnist_npz=../shared/data/mnist_5k.npz
or with explicit files:
  python -m svhn_jax.prepare --dataset=multi_mnist --mnist_npz=../shared/data/mnist_5k.npz \\
      --digit_pool=train --num_examples=100000 --seed=1 --out=data/mm/train.h5
  python -m svhn_jax.prepare --dataset=multi_mnist --mnist_npz=../shared/data/mnist_5k.npz \\
      --digit_pool=test --num_examples=5000 --seed=2 --out=data/mm/test.h5
  python -m svhn_jax.main --config=configs/multi_mnist.py --workdir=workdirs/multi_mnist \\
      --config.dataset=hdf5 --config.train_file=data/mm/train.h5 --config.eval_file=data/mm/test.h5
"""
from svhn_jax.core import config


def get_config():
    c = config.reader()
    c.model = "seed_cnn"
    c.head = "blank"
    c.dataset = "multi_mnist"
    c.recipe = "multi64_grey"
    c.train_splits = ("train",)
    c.eval_split = "test"
    c.num_multi_mnist_train = 100_000
    c.num_multi_mnist_test = 5000
    c.crop_size = 0
    c.batch_size = 128
    c.learning_rate = 1e-3
    c.lr_decay_steps = 2000
    c.lr_decay_rate = 0.9
    c.lr_staircase = True
    c.num_train_steps = 25_000     # 32 epochs of 100k images
    c.eval_every_steps = 2500
    c.checkpoint_every_steps = 2500
    return c
