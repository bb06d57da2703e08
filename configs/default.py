"""Shared defaults; every recipe starts from `get_config()` here and changes what it needs."""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Model.
    c.model = "seed_cnn"          # seed_cnn | goodfellow | resnet18 (svhn_jax.models registry)
    c.head = "blank"              # blank (5 x 11-way, the seed's) | length (length + 5 x 10-way)
    c.dropout_rate = 0.2          # goodfellow, resnet18 (seed_cnn keeps the seed report's rates)
    c.goodfellow_first_layer = "bn_relu"  # bn_relu (SVHNClassifier-PyTorch) | maxout (the paper)
    c.model_dtype = "float32"     # goodfellow, resnet18 compute dtype: float32 | bfloat16 (GPU/TPU)
    # Data (svhn_jax/data/sources.py: the registry; svhn_jax/data/paths.py: where the files live).
    c.dataset = "synthetic"       # synthetic | svhn | svhn_cropped | multi_mnist | hdf5
    c.recipe = "seed32_grey"      # seed32_grey | goodfellow64_rgb | ...
    c.data_dir = ""               # "" -> $SVHN_JAX_DATA or ~/.cache/svhn_jax/data
    c.train_splits = ("train",)   # split names concatenated for training (e.g. train, extra)
    c.eval_split = "test"
    c.train_file = ""             # dataset=hdf5: explicit paths to contract files
    c.eval_file = ""
    c.num_synthetic_train = 20000  # dataset=synthetic: examples generated per split
    c.num_synthetic_test = 2000
    c.num_multi_mnist_train = 5000  # dataset=multi_mnist: examples composed per split
    c.num_multi_mnist_test = 5000
    c.mnist_npz = ""              # dataset=multi_mnist: "" -> TFDS mnist; else an .npz of images [N,28,28], labels
    c.holdout_fraction = 0.2      # dataset=multi_mnist, .npz only: share of its digits kept for the test split
    c.crop_size = 0               # >0: random crop in training, centre crop at eval (on device)
    c.augment = False             # random zoom/rotation/shift, contrast, polarity, noise (data/augment.py)
    c.standardize = False         # inputs to zero mean and unit deviation per image (else mean only)
    # Optimisation.
    c.seed = 0
    c.init_from = ""              # "" (random init) | "pretrained" (the shipped reader) | a workdir to fine-tune
    c.batch_size = 64             # global, divided over every device
    c.eval_batch_size = 256       # global
    c.num_train_steps = 10_000
    c.optimizer = "adam"          # adam | adamw | sgd
    c.momentum = 0.9              # sgd only
    c.learning_rate = 7.5e-4
    c.lr_decay_steps = 5000       # exponential decay: lr * rate ** (step / decay_steps)
    c.lr_decay_rate = 0.95
    c.lr_staircase = True
    c.weight_decay = 0.0          # adamw: decoupled decay; sgd: L2 added to the gradient (torch's SGD)
    # Parallelism and bookkeeping.
    c.parallel = "auto"           # auto | host_reduce | shard_map | pmap (svhn_jax/parallel.py)
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 3
    c.max_eval_examples = 0       # 0 = evaluate on the whole split
    return c
