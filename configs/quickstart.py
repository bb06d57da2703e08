"""The seed ConvNet on offline synthetic house numbers: about 9 minutes on a 2-core CPU.

  python -m svhn_jax.main --config=configs/quickstart.py --workdir=workdirs/quickstart

Measured on the project's quiet 2-core CPU (jax 0.10.2, the defaults: 2 CPU devices, host_reduce):
514 s from an empty data folder (~80 s rendering and ingesting 20,000 + 2,000 images, then 6,000
steps at 931 images/s and 3 evaluations), 83.9 % whole-sequence accuracy on the 2,000 held-out
images (77.6 % at step 2,000, 82.3 % at 4,000). With ``--cpu_devices=1``: 862 s, 84.7 % (another
float summation order). The same config with 100,000 images and 10,000 steps of 128 reaches 88.9 %
(README, Results).
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
