"""ResNet-18 (3x3 stride-1 stem, flattened 7x7x512 readout) on SVHN format 1, train + extra, 54x54.

Same data and schedule as configs/goodfellow.py, so the two architectures compare like for like:
goodfellow64_rgb, random 54x54 crop in training and centre crop at evaluation, the length head,
dropout 0.2 before the heads. The model is `svhn_jax.models.resnet` (see its docstring for the
changes from the ImageNet network and why).

Optimiser: as configs/goodfellow.py (AdamW, batch 128, x 0.9 every 5,000 steps, 60,000 steps ~ 33
epochs) but lr 1e-3: every layer here is batch-normalised and there are no wide dense layers, the
reason the Goodfellow net needs 1e-4 (measured: ResNet-18 learns at 1e-3, e.g. 98.5 % training
sequence accuracy on multi-digit MNIST within 4,000 steps). Weight decay 5e-2 x lr 1e-3 = 5e-5 per
step, the per-step decay of SGD's 5e-4 L2 at lr 1e-2 with momentum 0.9; published ResNet recipes
on SVHN (e.g. wide ResNets on the cropped digits) also use 5e-4 with SGD + momentum.

Measured (H200, jax 0.11.2, float32): 12,500 training images/s at batch 128 on 54x54 RGB.
Expected on real SVHN: at least the Goodfellow net's ~96 % whole-sequence accuracy (a deeper
residual net on the same data and budget); not measured (no real data here).
Cost: 3.3 GFLOP per 54x54 image forward, ~10 GFLOP per training image, ~77 PFLOP for the run:
about twice the Goodfellow net (``--config.model_dtype=bfloat16`` on GPU/TPU).

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
