"""ResNet-18 (3x3 stride-1 stem, flattened 7x7x512 readout) on SVHN format 1, train + extra, 54x54.

Same data, heads and schedule as configs/goodfellow.py, so the two architectures compare like for
like: goodfellow64_rgb, random 54x54 crop in training and centre crop at evaluation, the length
head, dropout 0.2 before the heads. The model is `svhn_jax.models.resnet` (its docstring says what
changes from the ImageNet network and why). lr 1e-3 instead of the Goodfellow net's 1e-4: every
layer here is batch-normalised and there are no wide dense layers, and ResNet-18 learns at 1e-3.
Weight decay 5e-2 x lr 1e-3 = 5e-5 per step, the per-step decay of SGD's 5e-4 L2 at lr 1e-2 with
momentum 0.9 (published ResNet recipes on SVHN also use 5e-4 with SGD + momentum). About twice
the Goodfellow net's FLOPs (``--config.model_dtype=bfloat16`` on GPU/TPU).
Measured: docs/results.md; speed and cost: docs/performance.md.

Prepare the data once (downloads ~2.5 GB: train, extra and test), then train:
  python -m svhn_jax.prepare --dataset=svhn --splits=train,extra,test --recipe=goodfellow64_rgb
  python -m svhn_jax.main --config=configs/resnet18.py --workdir=workdirs/resnet18
"""
from configs import goodfellow


def get_config():
    c = goodfellow.get_config()
    c.model = "resnet18"
    c.learning_rate = 1e-3
    return c
