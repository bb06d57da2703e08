"""scripts/benchmark_peers.py: the peer wrapper's digit-string choice (RapidOCR 1.4.4's and 3.10's results),
the scoring, the one-line errors (no RapidOCR, a --json_out it cannot write, checked before the run), the
atomic report (a full disk keeps the earlier file), and (slow, with the peers installed) every system on
samples/ against score_photos."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO

SCRIPT = REPO / "scripts" / "benchmark_peers.py"
_spec = importlib.util.spec_from_file_location("benchmark_peers", SCRIPT)
peers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peers)


def _env() -> dict:
    """The environment a user runs the script in, as docs/peers.md writes it (``python scripts/...`` from the
    checkout): no PYTHONPATH, so the script must find this checkout's svhn_jax by itself (issue 29 item 9)."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "JAX_PLATFORMS": "cpu"}


def _run(*args: str, prelude: str = "", timeout: int = 600) -> subprocess.CompletedProcess:
    """`python scripts/benchmark_peers.py args`; with a `prelude` (Python), run first in the same process."""
    command = [sys.executable, str(SCRIPT), *args]
    if prelude:
        command = [sys.executable, "-c", f"import runpy, sys; {prelude}; sys.argv = {[str(SCRIPT), *args]!r}; "
                   f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"]
    return subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)


def _line(top: float, height: float, text: str, score: float, left: float = 0.0, tilt: float = 0.0) -> list:
    """A RapidOCR-style result line: [4 corner points, text, score]; `tilt` raises the right side."""
    return [[[left, top], [left + 50, top - tilt], [left + 50, top + height - tilt], [left, top + height]], text, score]


# ----------------------------------------------------------------------------- the wrapper

def test_digit_answer_keeps_digits_of_the_tallest_line_that_has_any():
    lines = [_line(0, 20, "No. 12a", 0.95),
             _line(30, 40, "Main Street", 0.99),  # tallest, but no digit
             _line(80, 30, "3-4", 0.8),
             _line(120, 10, "555 0199", 0.97)]
    assert peers.digit_answer(lines) == ("34", 0.8)


def test_digit_answer_nothing_or_no_digit_is_none():
    assert peers.digit_answer(None) == (None, 0.0)  # RapidOCR's result when it finds no text
    assert peers.digit_answer([]) == (None, 0.0)
    assert peers.digit_answer([_line(0, 40, "OPEN", 0.99), _line(50, 10, "١٢", 0.9)]) == (None, 0.0)  # 0-9 only


def test_digit_answer_height_is_the_vertical_extent_and_ties_go_to_the_score():
    # A tilted box: corners from y=-15 to y=20, so 35 high, taller than the straight 30.
    assert peers.digit_answer([_line(0, 30, "7", 0.99), _line(5, 15, "81", 0.6, tilt=20)]) == ("81", 0.6)
    assert peers.digit_answer([_line(0, 30, "12", 0.7), _line(50, 30, "13", 0.9), _line(99, 30, "14", 0.8)]) \
        == ("13", 0.9)


def test_recognition_only_results_become_one_whole_image_line():
    lines = peers.whole_image_lines([("B 47", 0.93)], 120, 96)
    assert lines == [[[[0, 0], [120, 0], [120, 96], [0, 96]], "B 47", 0.93]]
    assert peers.digit_answer(lines) == ("47", 0.93)
    assert peers.whole_image_lines(None, 120, 96) == []


def test_padded_box_and_upscaled_size():
    assert peers.padded_box((10, 20, 40, 30), 100, 100) == (4, 15, 56, 55)  # 15 %: 6 px and 4.5 px a side
    assert peers.padded_box((0, 0, 10, 10), 11, 11) == (0, 0, 11, 11)  # clipped to the image
    assert peers.upscaled_size(60, 40) == (144, 96)
    assert peers.upscaled_size(200, 100) == (200, 100)
    assert peers.upscaled_size(60, 40, min_height=0) == (60, 40)


def test_rapidocr3_results_become_the_same_lines():
    result = SimpleNamespace(boxes=np.array([[[0, 0], [50, 0], [50, 20], [0, 20]],
                                             [[0, 30], [50, 30], [50, 70], [0, 70]]], np.float32),
                             txts=("No. 12a", "3-4"), scores=(0.95, 0.8))
    lines = peers.rapidocr3_lines(result)
    assert lines == [[[[0.0, 0.0], [50.0, 0.0], [50.0, 20.0], [0.0, 20.0]], "No. 12a", 0.95],
                     [[[0.0, 30.0], [50.0, 30.0], [50.0, 70.0], [0.0, 70.0]], "3-4", 0.8]]
    assert peers.digit_answer(lines) == ("34", 0.8)
    assert peers.rapidocr3_lines(SimpleNamespace(boxes=None, txts=None, scores=None)) is None  # nothing found
    assert peers.digit_answer(peers.rapidocr3_lines(SimpleNamespace())) == (None, 0.0)
    texts = peers.rapidocr3_texts(SimpleNamespace(txts=("B 47",), scores=(0.93,)))
    assert peers.digit_answer(peers.whole_image_lines(texts, 120, 96)) == ("47", 0.93)
    assert peers.rapidocr3_texts(SimpleNamespace(txts=None, scores=None)) == []


# ----------------------------------------------------------------------------- scoring

def _answer(number, confidence, **extra):
    return {"number": number, "confidence": confidence, **extra}


ANSWERS = [_answer("12", 0.95),   # right, confident
           _answer("7", 0.99),    # wrong (17), confident
           _answer("5", 0.5),     # right, not confident
           _answer(None, 0.0),    # right: no number, none answered
           _answer("3", 0.92),    # wrong: a number where there is none, confident
           _answer(None, 0.0, error="damaged"),  # an unreadable photo is never right
           _answer(None, 0.0),    # wrong: missed 44
           _answer("9", 0.9)]     # right, confident exactly at the threshold
TRUTHS = ["12", "17", "5", "", "", "", "44", "9"]


def test_summarise_accuracy_precision_and_coverage():
    assert peers.summarise(ANSWERS, TRUTHS, 0.9) == {
        "num": 8, "right": 4, "accuracy": 0.5, "min_confidence": 0.9,
        "answered": 4, "answered_right": 2, "precision": 0.5, "coverage": 0.5}
    at_zero = peers.summarise(ANSWERS, TRUTHS, 0.0)
    assert (at_zero["answered"], at_zero["answered_right"], at_zero["precision"], at_zero["coverage"]) \
        == (5, 3, 0.6, 5 / 8)
    nothing = peers.summarise(ANSWERS, TRUTHS, 1.0)
    assert (nothing["answered"], nothing["precision"], nothing["coverage"]) == (0, None, 0.0)
    assert peers.summarise([], [], 0.9)["accuracy"] is None


def test_timing_mean_and_median():
    assert peers.timing(3.5, [1.0, 2.0, 6.0]) == {"warm_start_s": 3.5, "seconds_per_photo": 3.0,
                                                  "median_seconds_per_photo": 2.0}


# ----------------------------------------------------------------------------- command line

def test_missing_rapidocr_is_one_line_and_status_2():
    proc = _run("--labels=samples/labels.csv", "samples", prelude="sys.modules['rapidocr_onnxruntime'] = None",
                timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"error: {peers.MISSING}"]


def test_bad_arguments_are_one_line_and_status_2(tmp_path):
    no_boxes = tmp_path / "labels.csv"
    no_boxes.write_text("file,number\nsvhn_train_1.png,19\n")
    for args, words in (([f"--labels={no_boxes}", "--boxes", "samples"], "--boxes: 1 of 1 photos have no box"),
                        ([f"--labels={tmp_path / 'absent.csv'}", "samples"], "cannot read the labels"),
                        (["--labels=samples/labels.csv", "--min_confidence=2", "samples"], "must lie in 0-1"),
                        (["--labels=samples/labels.csv", str(tmp_path / "nowhere")], "not a folder")):
        proc = _run(*args, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], proc.stderr


def test_missing_rapidocr_3_is_one_line_and_status_2():
    proc = _run("--labels=samples/labels.csv", "samples", "--systems=rapidocr_3.10,svhn_jax",
                prelude="sys.modules['rapidocr'] = None", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [f"error: {peers.MISSING_3}"]


def test_unknown_or_repeated_systems_are_one_line(tmp_path):
    for systems in ("tesseract", "svhn_jax,svhn_jax", ","):
        proc = _run("--labels=samples/labels.csv", "samples", f"--systems={systems}", timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "--systems" in proc.stderr


def test_a_json_out_it_cannot_write_is_one_line_before_the_run(tmp_path):
    # Issue 29 item 6: a folder was a traceback after the whole run. Now checked first: with no peer
    # importable, the error is about --json_out (nothing was loaded or read).
    block = "sys.modules['rapidocr_onnxruntime'] = None; sys.modules['rapidocr'] = None"
    for out, words in ((tmp_path, "a folder"), (tmp_path / "absent" / "r.json", "no folder")):
        proc = _run("--labels=samples/labels.csv", "samples", f"--json_out={out}", prelude=block, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [f"error: --json_out={out}: cannot write there ({words}"
                                                    + (f" {tmp_path / 'absent'})" if words == "no folder" else ")")]


def test_the_report_is_written_whole_or_the_earlier_file_is_kept(tmp_path):
    # Issue 29 item 6: on a full disk the earlier report was truncated to invalid JSON. A file-size limit
    # (RLIMIT_FSIZE, in a child process) makes the disk "full" past 4 KiB.
    out = tmp_path / "peers.json"
    out.write_text(json.dumps({"earlier": True}) + "\n")
    child = textwrap.dedent(f"""
        import importlib.util, resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        spec = importlib.util.spec_from_file_location("peers", {str(SCRIPT)!r})
        peers = importlib.util.module_from_spec(spec); spec.loader.exec_module(peers)
        from pathlib import Path
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            peers.write_report(Path({str(out)!r}), {{"answers": ["x" * 100] * 1000}})
        except OSError as e:
            print("OSError", e.errno)
        peers.write_report(Path({str(out)!r} + ".small"), {{"ok": 1}})
        """)
    proc = subprocess.run([sys.executable, "-c", child], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "OSError"
    assert json.loads(out.read_text()) == {"earlier": True}
    assert json.loads((tmp_path / "peers.json.small").read_text()) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peers.json", "peers.json.small"]  # no temporary left


# ----------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def score_photos_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("score_photos") / "scores.json"
    proc = subprocess.run([sys.executable, "-m", "svhn_jax.score_photos", "--labels=samples/labels.csv", "samples",
                           f"--json_out={out}"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("rapidocr_onnxruntime", "rapidocr")),
                    reason="rapidocr_onnxruntime or rapidocr is not installed (pip install -e '.[peers]')")
@pytest.mark.parametrize("boxes", [False, True], ids=["whole_photo", "boxes"])
def test_both_systems_on_samples_agree_with_score_photos(tmp_path, score_photos_json, boxes):
    out = tmp_path / "peers.json"
    proc = _run("--labels=samples/labels.csv", "samples", f"--json_out={out}", *(["--boxes"] if boxes else []))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["boxes"] is boxes and report["min_confidence"] == 0.9
    assert report["versions"]["rapidocr_onnxruntime"] and report["versions"]["onnxruntime"]
    assert report["versions"]["rapidocr"] == "3.10.0"
    assert list(report["systems"]) == ["rapidocr_1.4.4", "rapidocr_3.10", "svhn_jax"]
    files = [line.split(",")[0] for line in (REPO / "samples" / "labels.csv").read_text().splitlines()[1:]]
    for name, system in report["systems"].items():
        s = system["summary"]
        assert set(s) == {"num", "right", "accuracy", "min_confidence", "answered", "answered_right",
                          "precision", "coverage"}
        assert s["num"] == 8 and 0 <= s["answered_right"] <= s["answered"] <= 8
        assert s["right"] == sum(a["right"] for a in system["answers"])
        assert system["timing"]["warm_start_s"] > 0 and system["timing"]["seconds_per_photo"] > 0
        assert [a["file"] for a in system["answers"]] == files
        for a in system["answers"]:
            assert a["number"] is None or a["number"].isdigit()
            assert 0.0 <= a["confidence"] <= 1.0 and a["seconds"] > 0
        assert name in proc.stdout
    ours = report["systems"]["svhn_jax"]
    theirs = score_photos_json["summary"]["box" if boxes else "no_box"]
    assert (ours["summary"]["right"], ours["summary"]["accuracy"]) == (theirs["right"], theirs["accuracy"])
    readings = [a["reading"] for a in score_photos_json["answers"]["box" if boxes else "no_box"]]
    assert [a["reading"] for a in ours["answers"]] == readings
    for peer in ("rapidocr_1.4.4", "rapidocr_3.10"):
        assert all(isinstance(line[0], str) for a in report["systems"][peer]["answers"] for line in a["lines"])
