"""Every task's config keys and their defaults; the recipes in ``configs/`` start from one of these.

Configs are flat ml_collections dicts, so a run is changed on the command line as
``--config.learning_rate=1e-3``. `base` holds what every task reads (which task and model, where the
data lies, the optimiser, parallelism, bookkeeping); `reader` and `localiser` add their own keys, so
a localiser's config carries no reader keys. `saved` reads a run's config.json back, keys added since
at their defaults. `load_file` runs a ``--config`` file as training does and `check_keys` holds its keys to
its task's: each refusal is a ValueError of one line naming the file.
"""
from __future__ import annotations

import json
import os
import stat
import sys
import traceback
import types
from pathlib import Path

import ml_collections

TASKS = ("reader", "localiser", "line_reader")


def base() -> ml_collections.ConfigDict:
    """The keys every task reads."""
    c = ml_collections.ConfigDict()
    c.task = "reader"             # reader | localiser (svhn_jax.tasks registry)
    c.model = "seed_cnn"          # svhn_jax.models registry
    # Data (svhn_jax/data/sources.py: the registry; svhn_jax/data/paths.py: where the files live).
    c.dataset = "synthetic"       # synthetic | svhn | svhn_cropped | multi_mnist | hdf5 | scenes
    c.recipe = "seed32_grey"      # seed32_grey | goodfellow64_rgb | scene128_rgb | ...
    c.data_dir = ""               # "" -> $SVHN_JAX_DATA or ~/.cache/svhn_jax/data
    c.train_splits = ("train",)   # split names concatenated for training (e.g. train, extra)
    c.eval_split = "test"
    # Optimisation.
    c.seed = 0
    c.init_from = ""              # "" (random init) | "pretrained[:NAME]" (shipped weights) | a workdir to fine-tune
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
    c.parallel = "auto"           # auto | host_reduce | shard_map | pmap (svhn_jax/core/parallel.py)
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 3
    return c


def reader() -> ml_collections.ConfigDict:
    """The readers' task: digit sequences from crops (seed_cnn, reader_cnn, goodfellow, resnet18)."""
    c = base()
    c.head = "blank"              # blank (5 x 11-way, the seed's) | length (length + 5 x 10-way)
    c.dropout_rate = 0.2          # goodfellow, resnet18, reader_cnn (seed_cnn keeps the seed report's rates)
    c.goodfellow_first_layer = "bn_relu"  # bn_relu (SVHNClassifier-PyTorch) | maxout (the paper)
    c.model_dtype = "float32"     # goodfellow, resnet18 compute dtype: float32 | bfloat16 (GPU/TPU)
    c.train_file = ""             # dataset=hdf5: explicit paths to contract files
    c.eval_file = ""
    c.num_synthetic_train = 20000  # dataset=synthetic: examples generated per split
    c.num_synthetic_test = 2000
    c.synthetic_fonts = "matplotlib"  # dataset=synthetic: the digits' faces: matplotlib | open (+ OFL font packages)
    c.num_multi_mnist_train = 5000  # dataset=multi_mnist: examples composed per split
    c.num_multi_mnist_test = 5000
    c.mnist_npz = ""              # dataset=multi_mnist: "" -> TFDS mnist; else an .npz of images [N,28,28], labels
    c.holdout_fraction = 0.2      # dataset=multi_mnist, .npz only: share of its digits kept for the test split
    c.crop_size = 0               # >0: random crop in training, centre crop at eval (on device)
    c.augment = False             # random zoom/rotation/shift, contrast, polarity, noise (data/augment.py)
    c.standardize = False         # inputs to zero mean and unit deviation per image (else mean only)
    c.max_eval_examples = 0       # 0 = evaluate on the whole split
    c.train_limit = 0             # >0: train on the first N examples of the training splits (file order)
    return c


def localiser() -> ml_collections.ConfigDict:
    """The localiser's task: where the number is in a whole photo (synthetic scenes, data/synth/scene.py)."""
    c = base()
    c.task = "localiser"
    c.model = "localiser"
    c.dataset = "scenes"
    c.recipe = "scene128_rgb"
    c.num_scenes_train = 24_000   # dataset=scenes: scenes rendered per split
    c.num_scenes_test = 1000
    c.scene_seed = 0              # added to the split's seed
    c.scene_facades = 0.0         # share of wall / no-number scenes drawn as a house front (data/synth/facade.py)
    return c


def line_reader() -> ml_collections.ConfigDict:
    """The digit line reader's fine-tune: CTC on 48-pixel-high lines (tasks/line_reader.py, data/lines.py)."""
    c = base()
    c.task = "line_reader"
    c.model = "line_reader"       # the imported PP-OCRv6 small recogniser cut to blank + 0-9 (models/graph_net.py)
    c.dataset = "lines"
    c.recipe = "line48x320_rgb"
    c.line_reader_weights = ""    # the weights it starts from: "" (shipped pretrained/line_reader) | a folder
    c.real_dir = ""               # an SVHN format-1 root: real lines from <real_dir>/<split>/ ("": renders only)
    c.num_line_renders = 6000     # rendered lines added to each training split
    c.num_line_renders_test = 500  # rendered lines of the evaluation split when real_dir is ""
    c.line_pad = 0.15             # the digits' union box grown by this of its height on each side
    c.augment = True              # contrast, brightness, sensor noise on device
    return c


def defaults(task: str) -> ml_collections.ConfigDict:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return {"reader": reader, "localiser": localiser, "line_reader": line_reader}[task]()


def task_of(values: dict | ml_collections.ConfigDict) -> str:
    """The task of a config (configs written before the ``task`` key: told by the model)."""
    if "task" in values:
        return values["task"]
    return "localiser" if values.get("model") == "localiser" else "reader"


def saved(path: str | Path) -> ml_collections.ConfigDict:
    """A run's config.json, keys added to its task's defaults since it was written at their defaults."""
    values = json.loads(Path(path).read_text())
    fresh = json.loads(defaults(task_of(values)).to_json_best_effort())
    return ml_collections.ConfigDict({**fresh, **values})


def _where(path: str, e: BaseException) -> str:
    """" line N" of the config file where `e` was raised ("" when the traceback never reached it)."""
    lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if os.path.abspath(f.filename) ==
             os.path.abspath(path)]
    return f" line {lines[-1]}" if lines else ""


def load_file(spec: str) -> ml_collections.ConfigDict:
    """A ``--config`` file's config, as ml_collections loads it (``PATH[:ARGUMENT]``: its ``get_config()``,
    or ``get_config(ARGUMENT)``). Raises a one-line ValueError "--config=PATH: reason" for a file that is
    missing or not a regular file, not Python (a YAML or JSON file, a syntax error), fails when run (the
    error and its line), defines no ``get_config``, or whose ``get_config`` returns no ConfigDict."""
    path, *argument = spec.split(":", 1)
    name = f"--config={path}"
    try:
        kind = stat.S_IFMT(os.stat(path).st_mode)
        if kind != stat.S_IFREG:
            what = "a folder" if kind == stat.S_IFDIR else "not a regular file"
            raise ValueError(f"{name}: not a config file ({what})")
        source = Path(path).read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{name}: no such file") from None
    except OSError as e:
        raise ValueError(f"{name}: cannot read it ({e.strerror or e})") from None
    hint = "a config is a Python file whose get_config() returns an ml_collections ConfigDict (configs/*.py)"
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:  # ValueError: null bytes
        line = f" line {e.lineno}" if getattr(e, "lineno", None) else ""
        reason = getattr(e, "msg", None) or str(e)
        raise ValueError(f"{name}{line}: not Python ({reason}); {hint}") from None
    module = types.ModuleType("svhn_jax_config_file")
    module.__file__ = os.path.abspath(path)
    sys.modules[module.__name__] = module  # as an import would (a dataclass in the file looks itself up)
    try:
        exec(code, module.__dict__)
    except Exception as e:  # the user's code: any failure is theirs to fix, told in one line
        raise ValueError(f"{name}{_where(path, e)}: {type(e).__name__}: {' '.join(str(e).split())}; {hint}") \
            from None
    finally:
        sys.modules.pop(module.__name__, None)
    get_config = module.__dict__.get("get_config")
    if not callable(get_config):
        raise ValueError(f"{name}: defines no get_config(); {hint}")
    try:
        config = get_config(*argument)
    except Exception as e:
        raise ValueError(f"{name}{_where(path, e)}: get_config() failed: {type(e).__name__}: "
                         f"{' '.join(str(e).split())}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ValueError(f"{name}: get_config() returned {type(config).__name__}, not an ml_collections ConfigDict; "
                         f"start from svhn_jax.core.config.{'/'.join(TASKS)}() as configs/*.py do")
    return config


def _listed(keys: list[str], most: int = 6) -> str:
    return ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")


def check_keys(config: ml_collections.ConfigDict, name: str = "the config") -> None:
    """Raises a one-line ValueError naming `name` when `config` lacks keys its task reads, or has keys
    no task of its kind reads (a misspelt key in the file would otherwise be silently ignored)."""
    task = task_of(config)
    if task not in TASKS:
        raise ValueError(f"{name}: unknown task {task!r}; choose one of {', '.join(TASKS)}")
    wanted, have = set(defaults(task).keys()), set(config.keys())
    missing, unknown = sorted(wanted - have), sorted(have - wanted)
    start = f"start from svhn_jax.core.config.{task}() as configs/*.py do"
    if missing:
        raise ValueError(f"{name}: lacks the {task} config keys {_listed(missing)}; {start}")
    if unknown:
        raise ValueError(f"{name}: keys no {task} run reads: {_listed(unknown)}; {start}")
