"""ResNet-18 (3x3 stride-1 stem, flattened 7x7x512 readout) on SVHN format 1, train + extra, 54x54.

Same data and schedule as configs/goodfellow.py, so the two architectures compare like for like:
goodfellow64_rgb, random 54x54 crop in training and centre crop at evaluation, the length head,
dropout 0.2 before the heads. The model is `svhn_jax.models.resnet` (see its docstring for the
changes from the ImageNet network and why).

Optimiser: as configs/goodfellow.py (AdamW, batch 128, lr 1e-3 x 0.9 every 5,000 steps, weight
decay 5e-2 = the per-step decay of SGD's 5e-4 L2 at lr 1e-2 with momentum 0.9, 60,000 steps ~ 33
epochs). Published
ResNet recipes on SVHN (e.g. wide ResNets on the cropped digits) also use weight decay 5e-4 with
SGD + momentum; this keeps the project's Adam default with that per-step decay.

Expected: at least the Goodfellow net's ~96 % whole-sequence accuracy (a deeper residual net on
the same data and budget); not yet measured with this code (no accelerator here).
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
    return c
