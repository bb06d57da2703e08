"""scripts/calibrate_confidence.py: the threshold table's maths on hand-made confidences, the scenes'
numbers it scores against, and a short real run whose answer is the shipped default's rule."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from svhn_jax.data.synth.scene import render_scene, scene_number
from svhn_jax.infer import whole_photo

SCRIPT = REPO / "scripts" / "calibrate_confidence.py"
_spec = importlib.util.spec_from_file_location("calibrate_confidence", SCRIPT)
calibrate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(calibrate)


def test_table_counts_coverage_and_precision_and_picks_the_lowest_threshold_that_reaches_the_target():
    confidence = np.array([0.95, 0.85, 0.75, 0.65, 0.55, 0.15, 0.0, 0.0])
    right = np.array([True, True, True, False, True, False, False, False])
    t = calibrate.table(confidence, right, target=0.97)
    rows = {r["threshold"]: r for r in t["rows"]}
    assert rows[0.5] == {"threshold": 0.5, "coverage": 5 / 8, "answered": 5, "precision": 4 / 5}
    assert rows[0.7] == {"threshold": 0.7, "coverage": 3 / 8, "answered": 3, "precision": 1.0}
    assert rows[0.1]["precision"] == 4 / 6
    assert t["chosen"] == 0.7  # 0.6 answers the wrong 0.65
    assert calibrate.table(np.zeros(3), np.zeros(3, bool), 0.97) == {
        "rows": [{"threshold": th, "coverage": 0.0, "answered": 0, "precision": None} for th in calibrate.THRESHOLDS],
        "chosen": None}


def test_scene_number_is_the_number_the_scene_shows():
    numbers = [scene_number(987_654, i) for i in range(60)]
    boxes = [render_scene(987_654, i)[1] for i in range(60)]
    assert [n != "" for n in numbers] == [not np.isnan(b[0]) for b in boxes]
    assert all(n.isdigit() and 1 <= len(n) <= 5 for n in numbers if n)


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """The script as the docs run it: `python scripts/calibrate_confidence.py ...` from the checkout, no
    PYTHONPATH (the script finds this checkout's svhn_jax itself)."""
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "scripts/calibrate_confidence.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_flags_it_cannot_use_and_outputs_it_cannot_write_are_one_line_before_any_scene(tmp_path):
    """Before: --scale=0 and --scale=-1 were tracebacks, --num=0 wrote NaN, and --out=FOLDER a traceback at
    the end of the run; now each is one line at once, and an earlier --out file is kept as it was."""
    earlier = tmp_path / "calibration.json"
    earlier.write_text('{"earlier": true}\n')
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    cases = [(["--num=0"], "error: --num=0: must be at least 1 (scenes read)"),
             (["--scale=0"], "error: --scale=0: must be at least 1 (1: the localiser's 128-pixel scenes)"),
             (["--scale=-2"], "error: --scale=-2: must be at least 1 (1: the localiser's 128-pixel scenes)"),
             (["--target=0"], "error: --target=0.0: must lie in (0, 1] (a precision)"),
             (["--target=1.5"], "error: --target=1.5: must lie in (0, 1] (a precision)"),
             ([f"--out={tmp_path / 'folder'}"], f"error: --out={tmp_path / 'folder'}: cannot write there (a folder)"),
             ([f"--out={tmp_path / 'file' / 'x.json'}"],
              f"error: --out={tmp_path / 'file' / 'x.json'}: cannot write there (not a folder)"),
             (["stray"], "error: unexpected arguments 'stray' (flags only: --num, --seed, --scale, --target, --out)")]
    for args, line in cases:
        out = [] if args[0].startswith("--out") else [f"--out={earlier}"]
        run = _run("--num=1", *out, *args, timeout=120)
        assert run.returncode == 1 and run.stdout == "", (args, run.stderr[-2000:])
        assert run.stderr.splitlines() == [line], (args, run.stderr[-2000:])
    assert earlier.read_text() == '{"earlier": true}\n'


@pytest.mark.slow
def test_a_short_run_reports_the_table_and_the_default(tmp_path):
    out = tmp_path / "calibration.json"
    out.write_text("an earlier file\n")
    run = _run("--num=12", f"--out={out}")
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert json.loads(out.read_text()) == report and not list(tmp_path.glob(".*tmp*"))
    # The default it reports is the one predict and score_photos answer with: the shipped calibrator's.
    shipped = whole_photo.Calibrator.load().min_confidence
    assert report["num"] == 12 and report["default_min_confidence"] == whole_photo.DEFAULT_MIN_CONFIDENCE == shipped
    assert 0 < shipped < 1
    assert [r["threshold"] for r in report["rows"]] == list(calibrate.THRESHOLDS)
    coverage = [r["coverage"] for r in report["rows"]]
    assert coverage == sorted(coverage, reverse=True) and 0 < report["accuracy"] <= 1
