"""Goodfellow et al. (2013)'s 8-layer ConvNet on real SVHN format 1, train + extra, 54x54 crops.

Data: the goodfellow64_rgb recipe (union of the digit boxes made square, expanded by 30 %, 64x64
RGB); a random 54x54 crop in training, the centre crop at evaluation (``crop_size``, on device).
Model: `svhn_jax.models.goodfellow` with BatchNorm + ReLU on every conv layer as in
SVHNClassifier-PyTorch (``--config.goodfellow_first_layer=maxout`` for the paper's first layer),
dropout 0.2, the length head (length 0..5/>5 + 5 digits).

Optimiser, from the published recipes. SVHNClassifier-PyTorch (95.65 % with this net) uses SGD,
momentum 0.9, lr 1e-2 x 0.9 every 10,000 steps, L2 weight decay 5e-4, batch 32. We keep the
project's Adam with exponential decay, in its decoupled-weight-decay form (AdamW):
- batch 128: the reference's 32 per device on 4 devices (GPUs/TPU cores); 1 device works too;
- lr 1e-3, the usual Adam step for BatchNorm ConvNets, x 0.9 every 5,000 steps (staircase): the
  reference's factor; after 60,000 steps the lr is 0.28x its start, as the reference's after
  ~120,000 of its steps;
- weight_decay 5e-2: AdamW shrinks each weight by lr * wd per step; SGD's L2 with momentum 0.9
  by lr_sgd / (1 - 0.9) * 5e-4 = 5e-5 per step; 1e-3 * 5e-2 gives the same 5e-5 (and 0.05 is
  the usual AdamW decay for ConvNets);
- 60,000 steps = 7.7 M images, about 33 passes over train + extra (235,755 images).
The reference's own optimiser (without its L2, which optax's sgd here lacks):
  --config.optimizer=sgd --config.learning_rate=0.01 --config.batch_size=32 --config.lr_decay_steps=10000

Expected: about 95.5-96 % whole-sequence test accuracy (SVHNClassifier-PyTorch 95.65 %, the paper
96.03 %); not yet measured with this code (no accelerator here). Cost: 1.6 GFLOP per 54x54 image
forward, ~4.8 GFLOP per training image, ~37 PFLOP for the run: a few hours on one recent GPU
(``--config.model_dtype=bfloat16`` on GPU/TPU roughly halves it), weeks on a 2-core CPU.

Prepare the data once (downloads ~2.5 GB: train, extra and test), then train:
  python -m svhn_jax.prepare --dataset=svhn --splits=train,extra,test --recipe=goodfellow64_rgb
  python -m svhn_jax.main --config=configs/goodfellow.py --workdir=workdirs/goodfellow
"""
from configs import default


def get_config():
    c = default.get_config()
    c.model = "goodfellow"
    c.head = "length"
    c.goodfellow_first_layer = "bn_relu"
    c.dropout_rate = 0.2
    c.dataset = "svhn"
    c.recipe = "goodfellow64_rgb"
    c.train_splits = ("train", "extra")
    c.eval_split = "test"
    c.crop_size = 54
    c.batch_size = 128
    c.eval_batch_size = 512
    c.optimizer = "adamw"
    c.learning_rate = 1e-3
    c.lr_decay_steps = 5000
    c.lr_decay_rate = 0.9
    c.lr_staircase = True
    c.weight_decay = 5e-2
    c.num_train_steps = 60_000
    c.log_every_steps = 100
    c.eval_every_steps = 5000
    c.checkpoint_every_steps = 5000
    return c
