"""scripts/ppocr_agreement.py, run as the docs write it: the imported PP-OCRv6 small against onnxruntime
on the wheel's own files, on two sample photos and their labelled lines."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None,
                                reason="needs the [peers] extra (rapidocr 3.10's ONNX files)")


@pytest.mark.slow
def test_agreement_is_measured_and_written(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("svhn_train_2.png", "synthetic_1.png"):
        shutil.copy(REPO / "samples" / name, photos / name)
    rows = [line for line in (REPO / "samples" / "labels.csv").read_text().splitlines()
            if line.startswith(("file,", "svhn_train_2.png,", "synthetic_1.png,"))]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "agreement.json"
    proc = subprocess.run([sys.executable, "scripts/ppocr_agreement.py", f"--photos={photos}",
                           f"--labels={tmp_path / 'labels.csv'}", f"--json_out={out}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result == json.loads(proc.stdout)
    assert result["photos"] == 2 and result["lines"] == 2 and result["line_readings_equal"] == 2
    assert 0 < result["detector_max_abs_diff"] < 1e-3 and result["line_reader_max_abs_diff"] < 1e-4
    folder = subprocess.run([sys.executable, "scripts/ppocr_agreement.py", f"--photos={photos}",
                             f"--json_out={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert folder.returncode == 2 and "is a folder" in folder.stderr and "Traceback" not in folder.stderr
