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


@pytest.mark.slow
def test_a_short_run_reports_the_table_and_the_default():
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(SCRIPT), "--num=12"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["num"] == 12 and report["default_min_confidence"] == whole_photo.DEFAULT_MIN_CONFIDENCE == 0.7
    assert [r["threshold"] for r in report["rows"]] == list(calibrate.THRESHOLDS)
    coverage = [r["coverage"] for r in report["rows"]]
    assert coverage == sorted(coverage, reverse=True) and 0 < report["accuracy"] <= 1
