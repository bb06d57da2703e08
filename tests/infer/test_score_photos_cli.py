"""score_photos and predict as programs: a --workdir whose config.json is broken is one line, an unsure
reading is said as a guess, and ``--help`` lists every flag the program takes."""
from __future__ import annotations

import ast
import re
import subprocess

import pytest
from conftest import REPO, run_module

from svhn_jax.cli import predict
from svhn_jax.infer import whole_photo

pytestmark = pytest.mark.slow


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_score_photos_with_a_workdir_whose_config_is_broken_is_one_line_as_in_predict(tmp_path):
    """Before: score_photos died with JSONDecodeError's traceback; predict already said it in one line."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{not json\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,number\nsvhn_train_2.png,23\n")
    expected = (f"{run}: cannot load a trained run (JSONDecodeError: Expecting property name enclosed in double "
                "quotes: line 1 column 2 (char 1))")
    scored = run_module("svhn_jax.score_photos", f"--labels={labels}", f"--workdir={run}",
                        f"--json_out={tmp_path / 'scores.json'}", str(REPO / "samples"))
    assert scored.returncode == 2 and scored.stdout == "" and _one_line(scored) == expected
    assert not (tmp_path / "scores.json").exists()
    predicted = run_module("svhn_jax.predict", f"--workdir={run}", str(REPO / "samples" / "svhn_train_2.png"))
    assert predicted.returncode == 2 and _one_line(predicted) == expected


def test_an_unsure_reading_is_said_as_a_guess_and_no_reading_as_no_number():
    """Before: "a.png: no number (confidence below 0.9; best guess 67, ...)" for a reading only unsure."""
    read = {"reading": "67", "confidence": 0.65, "box": [3, 4, 20, 10], "box_confidence": 0.8, "reason": None}
    unsure = whole_photo.answer("a.png", read, 0.9)
    assert predict.format_answer(unsure) == (
        "a.png: unsure, best guess 67 at 0.650 (confidence below 0.9, box 3,4,20,10)")
    doubted = whole_photo.answer("a.png", {**read, "reason": "no house number found (the localiser gives 0.57 to none)",
                                           "box": None}, 0.9)
    assert predict.format_answer(doubted) == ("a.png: unsure, best guess 67 at 0.650 (no house number found (the "
                                              "localiser gives 0.57 to none))")
    nothing = whole_photo.answer("a.png", {"reading": "", "confidence": 0.0, "box": None, "reason": "no digit read"},
                                 0.9)
    assert predict.format_answer(nothing) == "a.png: no number (no digit read; confidence 0.000)"


@pytest.mark.parametrize("program, flags", [
    ("svhn_jax.predict", ["workdir", "json", "min_confidence", "box", "boxes", "tta", "localiser", "annotate",
                          "max_pixels", "cache_dir", "backend", "onnx_dir"]),
    ("svhn_jax.score_photos", ["labels", "workdir", "localiser", "min_confidence", "json_out"]),
    ("svhn_jax.prepare", ["base_url", "data_dir", "dataset", "digit_pool", "holdout_fraction", "mnist_npz",
                          "num_examples", "out", "recipe", "seed", "source_dir", "splits", "strict", "workers"]),
    ("svhn_jax.report", ["workdir"]),
    ("svhn_jax.synth", ["fonts", "num", "out", "seed", "split", "workers"]),
    ("svhn_jax.import_ppocr", ["dtype", "out"]),
    ("svhn_jax.export", ["format", "localiser", "out", "overwrite", "workdir"]),
    ("svhn_jax.demo", ["cache_dir", "localiser", "max_pixels", "max_upload_mb", "max_uploads", "min_confidence",
                       "port", "read_timeout", "samples", "workdir"])])
def test_help_shows_the_programs_text_and_every_flag_with_its_default(program, flags):
    """Before: --help printed the shim's one line ("the command users type; ...") and no flag at all."""
    result = run_module(program, "--help", timeout=120)
    assert "Traceback" not in result.stderr
    text = result.stdout
    assert "the command users type" not in text, text[:2000]
    # all of the program's docstring, read from its file (importing it here would define its flags twice)
    source = (REPO / program.replace("svhn_jax.", "svhn_jax/cli/").replace(".", "/")).with_suffix(".py")
    assert ast.get_docstring(ast.parse(source.read_text()), clean=False) in text
    listed = re.findall(r"^  --(?:\[no\])?(\w+):", text, re.M)
    assert sorted(listed) == sorted(flags), text
    if "min_confidence" not in flags:
        return
    default = f"{whole_photo.DEFAULT_MIN_CONFIDENCE!r}"
    assert re.search(r"--min_confidence:.*?\(default: '" + re.escape(default) + r"'\)", text, re.S)
