"""The line reader's fine-tune on house numbers (`tasks/line_reader.py`, docs/line_reader.md).

  nice -n 10 python -m svhn_jax.main --config=configs/line_reader.py --workdir=/work/runs/line_reader_ft

From the imported PP-OCRv6 small recogniser cut to blank + 0-9 (the shipped pretrained/line_reader),
CTC at a low learning rate on 48 x 320 lines: the 2,000 real SVHN train photos of
``../shared/data/svhn_real/train`` cut at their digits' union box, plus 2,000 rendered lines
(`data/lines.py`); evaluated on the 200 real test photos' official-box lines (evaluation only).
Adam at 2e-5, decaying smoothly by 0.3 every 400 steps, batches of 8 lines; the run stops at step 226
(the candidate of docs/line_reader.md: that schedule cut where the shared CPU's time ran out; a resumed
run ends at the same parameters as one never stopped, so this command remakes it bitwise). About 30
minutes on the 2-core CPU shared with other jobs (1.1-2.5 s a step when quiet). Resumable: the same
command continues.
"""
from pathlib import Path

from svhn_jax.core import config

REAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "svhn_real"


def get_config():
    c = config.line_reader()
    c.real_dir = str(REAL_DIR)
    c.num_line_renders = 2000
    c.batch_size = 8
    c.eval_batch_size = 8
    c.learning_rate = 2e-5
    c.lr_decay_steps = 400
    c.lr_decay_rate = 0.3
    c.lr_staircase = False
    c.num_train_steps = 226
    c.log_every_steps = 25
    c.eval_every_steps = 100
    c.checkpoint_every_steps = 50
    return c
