"""Nothing lost, nothing mislabelled: data preparation, predict and report under real faults.

Real faults, not mocks: a 6 MiB tmpfs for a full disk (mounted by the test; skipped where mounting
is not permitted), real second processes for a shared data folder, real signals, a real FIFO.

Unreadable files: the tests run as root, and root reads a ``chmod 000`` folder anyway. The child
process is therefore started as root without the two capabilities that let root ignore permissions
(CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, dropped from the bounding set by a small launcher that
then execs the program, which so starts without them); ``chmod 000`` then denies it exactly as it
denies any user, with a real EACCES. As another user nothing needs dropping.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO, run_module
from PIL import Image

from svhn_jax.data import store
from svhn_jax.data.sources import DataWriteError
from svhn_jax.data.svhn import ingest as svhn
from svhn_jax.data.svhn.digitstruct import DigitBox, Entry, write_digitstruct
from svhn_jax.data.svhn.release import DataError

# argv[1:]: the command to exec once CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2) are dropped
# (prctl PR_CAPBSET_DROP = 24); a launcher, not a preexec_fn, which is unsafe in a threaded process.
_OBEY_PERMISSIONS = """
import ctypes, os, sys
if os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
os.execv(sys.argv[1], sys.argv[1:])
"""


def _env() -> dict[str, str]:
    return {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}


def run_unprivileged(module: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`conftest.run_module`, in a child that obeys file permissions (see the module docstring)."""
    return subprocess.run([sys.executable, "-c", _OBEY_PERMISSIONS, sys.executable, "-m", module, *args],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The program's only stderr line (progress bars and absl's INFO lines aside), checked to be no traceback."""
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr[-3000:]
    text = re.sub(r"[^\r\n]*(chunk/s|s/chunk)\]", "", result.stderr)  # tqdm's bars (fast or slow): overwritten
    lines = [line for line in text.replace("\r", "\n").splitlines()
             if line.strip() and not re.match(r"I\d{4} [\d:.]+ +\d+ \S+:\d+\] ", line)]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def make_release(folder: Path, n: int, *, names: list[str] | None = None) -> list[str]:
    """A format-1 folder of `n` random 60x40 photos, each of the digits of its index + 1 (1-3
    digits); returns the labels in order."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(n)
    entries, labels = [], []
    for i in range(n):
        label = str(i + 1)
        name = names[i] if names else f"{i + 1}.png"
        if not names or not (folder / name).exists():
            Image.fromarray(rng.integers(0, 256, (40, 60, 3), np.uint8)).save(folder / Path(name).name)
        boxes = tuple(DigitBox(int(d) or 10, 6 + 12 * k, 8, 10, 20) for k, d in enumerate(label))
        entries.append(Entry(name, boxes))
        labels.append(label)
    write_digitstruct(folder / "digitStruct.mat", entries)
    return labels


def labels_of(path: Path) -> dict[str, str]:
    split = store.read_split(path)
    return dict(zip(split.filenames.tolist(), store.decode_labels(split.lengths, split.digits)))


def leftovers(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if ".tmp-" in p.name or ".extract-" in p.name)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, list[str], list[str]]:
    """A release with a small test split and a train split too big for `small_disk` as
    goodfellow64_rgb (12 KiB an image, stored in chunks of 256: 3 MiB)."""
    root = tmp_path_factory.mktemp("release")
    return root, make_release(root / "train", 600), make_release(root / "test", 12)


@pytest.fixture
def small_disk(tmp_path):
    """A real 6 MiB tmpfs; unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def prepare_svhn(data_dir: Path, source_dir: Path, splits: str, *extra: str) -> subprocess.CompletedProcess:
    return run_module("svhn_jax.prepare", "--dataset=svhn", f"--splits={splits}", f"--source_dir={source_dir}",
                      f"--data_dir={data_dir}", "--recipe=goodfellow64_rgb", "--workers=1", *extra)


# ------------------------------------------------------------------ 1. full disk during prepare

def test_a_split_that_does_not_fit_leaves_the_earlier_file(small_disk):
    path = small_disk / "train.h5"
    images = np.zeros((4, 64, 64, 3), np.uint8)
    lengths, digits = store.encode_labels(["1", "22", "333", "4444"])
    store.write_split(path, images, lengths, digits, list("abcd"), recipe="goodfellow64_rgb", source="before")
    before = path.read_bytes()
    big = np.ones((400, 64, 64, 3), np.uint8)  # 2 chunks of 3 MiB, beside the first file's one
    lengths, digits = store.encode_labels(["5"] * 400)
    with pytest.raises(DataWriteError, match=re.escape(f"cannot write {path} (No space left on device)")):
        store.write_split(path, big, lengths, digits, [str(i) for i in range(400)], recipe="goodfellow64_rgb",
                          source="after")
    assert path.read_bytes() == before and leftovers(small_disk) == []
    assert labels_of(path) == dict(zip("abcd", ["1", "22", "333", "4444"]))


@pytest.mark.slow
def test_full_disk_during_prepare_then_a_rerun_with_space(small_disk, source):
    root, train_labels, test_labels = source
    first = prepare_svhn(small_disk, root, "test")
    assert first.returncode == 0, first.stderr
    test_file = small_disk / "svhn" / "goodfellow64_rgb" / "test.h5"
    test_bytes = test_file.read_bytes()

    full = prepare_svhn(small_disk, root, "train")
    train_file = test_file.with_name("train.h5")
    assert full.returncode == 1
    assert one_line_error(full) == (f"error: cannot write {train_file} (No space left on device); "
                                    "an earlier file there is kept")
    assert not train_file.exists() and leftovers(small_disk) == []
    assert test_file.read_bytes() == test_bytes

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    again = prepare_svhn(small_disk, root, "test,train")
    assert again.returncode == 0, again.stderr
    assert f"{test_file}: already prepared" in again.stdout
    assert labels_of(train_file) == {f"{i + 1}.png": label for i, label in enumerate(train_labels)}
    assert labels_of(test_file) == {f"{i + 1}.png": label for i, label in enumerate(test_labels)}


@pytest.mark.slow
def test_full_disk_while_worker_processes_preprocess_is_one_line(small_disk, source):
    """The pool ends at once after the write error, in public API (no 'Exception ignored ... Bad file
    descriptor' from a pool's private state after the line)."""
    root, _, _ = source
    full = prepare_svhn(small_disk, root, "train", "--workers=2")
    train_file = small_disk / "svhn" / "goodfellow64_rgb" / "train.h5"
    assert full.returncode == 1
    assert one_line_error(full) == (f"error: cannot write {train_file} (No space left on device); "
                                    "an earlier file there is kept")
    assert not train_file.exists() and leftovers(small_disk) == []


@pytest.mark.slow
def test_an_incomplete_split_is_not_taken_for_prepared(tmp_path, source):
    root, train_labels, _ = source
    train_file = tmp_path / "svhn" / "goodfellow64_rgb" / "train.h5"
    train_file.parent.mkdir(parents=True)
    with h5py.File(train_file, "w") as f:  # what a crash of an earlier version left: no num_examples
        f.create_dataset("images", data=np.zeros((3, 64, 64, 3), np.uint8))
    result = prepare_svhn(tmp_path, root, "train")
    assert result.returncode == 0, result.stderr
    assert f"{train_file}: not a complete split" in result.stdout
    assert labels_of(train_file) == {f"{i + 1}.png": label for i, label in enumerate(train_labels)}


# ------------------------------------------------------------------ 6. predict past unreadable inputs

@pytest.mark.slow
def test_predict_answers_every_readable_image_past_unreadable_ones(workdir, tmp_path):
    from svhn_jax.cli import predict
    rng = np.random.default_rng(6)
    for name in ("good1.png", "good2.png", "mixed/ok.png", "locked/inside.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 60, 3), np.uint8)).save(tmp_path / name)
    os.mkfifo(tmp_path / "fifo.png")
    os.mkfifo(tmp_path / "mixed" / "pipe.png")
    (tmp_path / "locked").chmod(0)
    good = [tmp_path / "good1.png", tmp_path / "mixed" / "ok.png", tmp_path / "good2.png"]
    args = [tmp_path / "good1.png", tmp_path / "locked", tmp_path / "locked" / "inside.png",
            tmp_path / "fifo.png", "/dev/zero", tmp_path / "mixed", tmp_path / "good2.png"]
    try:
        result = run_unprivileged("svhn_jax.predict", f"--workdir={workdir}", *map(str, args), timeout=240)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.splitlines() == [f"{tmp_path / 'locked'}: permission denied",
                                          f"{tmp_path / 'locked' / 'inside.png'}: permission denied",
                                          f"{tmp_path / 'fifo.png'}: not a regular file (FIFO)",
                                          "/dev/zero: not a regular file (character device)",
                                          f"{tmp_path / 'mixed' / 'pipe.png'}: not a regular file (FIFO)"]
    alone, err = io.StringIO(), io.StringIO()  # the readable images on their own, in this process
    from svhn_jax.infer.localiser import Localiser
    from svhn_jax.infer.reader import Reader
    assert predict.run(Reader.load(workdir), [str(f) for f in good], localiser=Localiser.load(), out=alone,
                       err=err) == 0
    assert result.stdout == alone.getvalue() and len(result.stdout.splitlines()) == len(good)


# ------------------------------------------------------------------ 7. one fresh data folder, two runs

@pytest.mark.slow
def test_two_runs_preparing_one_fresh_data_folder_both_succeed(tmp_path):
    data = tmp_path / "data"
    args = [sys.executable, "-m", "svhn_jax.prepare", "--dataset=synthetic", "--splits=train,test",
            "--num_examples=40", f"--data_dir={data}"]
    runs = [subprocess.Popen(args, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    files = [data / "synthetic" / "seed32_grey" / f"{s}.h5" for s in ("train", "test")]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0 and "Traceback" not in err, err[-3000:]
        assert out.splitlines() == [f"{files[0]}: synthetic(renderer=2, seed=1, num=40)",
                                    f"{files[1]}: synthetic(renderer=2, seed=2, num=40)"]
    assert leftovers(data) == []
    assert sorted(p.name for p in (data / "synthetic" / "raw").iterdir()) == ["test", "train"]
    for file in files:  # the same as one run alone makes
        split = store.read_split(file)
        assert len(split) == 40 and split.filenames.tolist() == [f"{i + 1}.png" for i in range(40)]
    alone = tmp_path / "alone"
    result = run_module("svhn_jax.prepare", "--dataset=synthetic", "--splits=train", "--num_examples=40",
                        f"--data_dir={alone}")
    assert result.returncode == 0, result.stderr
    a, b = store.read_split(files[0]), store.read_split(alone / "synthetic" / "seed32_grey" / "train.h5")
    for name in ("images", "lengths", "digits", "filenames"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# ------------------------------------------------------------------ 8. one line instead of a traceback

@pytest.mark.slow
@pytest.mark.parametrize("module", ["svhn_jax.prepare", "svhn_jax.main", "localiser"])
@pytest.mark.parametrize("fault", ["not writable", "full"])
def test_a_data_folder_not_writable_or_full_is_one_line(module, fault, tmp_path, request):
    """"localiser": main with configs/localiser.py, whose scenes are rendered into DATA/scenes (a full disk
    there once ended in a segfault)."""
    folder = "scenes" if module == "localiser" else "synthetic"
    if fault == "full":
        data = request.getfixturevalue("small_disk")
        with open(data / "filler", "wb") as f:  # leave 64 KiB: the first images do not fit
            vfs = os.statvfs(data)
            f.write(b"\0" * (vfs.f_bavail * vfs.f_frsize - 64 * 1024))
        reason = "No space left on device"
    else:
        data = tmp_path / "data"
        data.mkdir(mode=0o555)
        reason = f"Permission denied: '{data / folder}'"
    if module == "svhn_jax.prepare":
        args = ["--dataset=synthetic", "--splits=train", "--num_examples=40", f"--data_dir={data}"]
    elif module == "localiser":
        module, args = "svhn_jax.main", ["--config=configs/localiser.py", "--config.num_scenes_train=300",
                                         "--config.num_scenes_test=32", "--config.batch_size=16",
                                         f"--config.data_dir={data}", f"--workdir={tmp_path / 'run'}"]
    else:
        args = ["--config=configs/test.py", f"--config.data_dir={data}", f"--workdir={tmp_path / 'run'}"]
    result = run_unprivileged(module, *args)
    assert result.returncode == 1
    assert one_line_error(result) == f"error: cannot prepare the data in {data / folder} ({reason})"
    assert leftovers(data) == [] and not list(data.rglob("*.h5"))


@pytest.mark.slow
def test_a_missing_hdf5_train_file_is_one_line(tmp_path):
    result = run_module("svhn_jax.main", "--config=configs/test.py", "--config.dataset=hdf5",
                        f"--config.train_file={tmp_path / 'train.h5'}", f"--config.eval_file={tmp_path / 'test.h5'}",
                        f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 1
    assert one_line_error(result) == (f"error: {tmp_path / 'train.h5'} is missing "
                                      "(config.train_file of dataset=hdf5)")


@pytest.mark.slow
@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99])
def test_a_truncated_eval_predictions_file_is_one_line(tmp_path, keep):
    from svhn_jax.data.store import encode_labels
    lengths, digits = encode_labels(["12", "345"])
    path = tmp_path / "eval_predictions.npz"
    np.savez_compressed(path, pred_lengths=lengths, pred_digits=digits, confidence=np.array([0.5, 0.9]),
                        true_lengths=lengths, true_digits=digits)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    result = run_module("svhn_jax.report", f"--workdir={tmp_path}")
    assert result.returncode == 1
    assert one_line_error(result).startswith(f"report: {path}: unreadable (")
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "figures").exists()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_prepare_removes_its_temporary_files(signum, tmp_path, source):
    root, _, test_labels = source
    assert prepare_svhn(tmp_path, root, "test").returncode == 0
    test_file = tmp_path / "svhn" / "goodfellow64_rgb" / "test.h5"
    test_bytes = test_file.read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "svhn_jax.prepare", "--dataset=svhn", "--splits=train",
                             f"--source_dir={root}", f"--data_dir={tmp_path}", "--recipe=goodfellow64_rgb",
                             "--workers=2"], cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.time() + 120
    while not leftovers(tmp_path) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the worker processes are starting: a terminal's Ctrl-C reaches them too
    assert proc.poll() is None, "prepare ended before it could be interrupted"
    os.killpg(proc.pid, signum)  # the whole process group, as a terminal does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum
    assert one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", err)) == (
        f"error: interrupted ({signal.Signals(signum).name})")
    assert leftovers(tmp_path) == [] and not test_file.with_name("train.h5").exists()
    assert test_file.read_bytes() == test_bytes
    assert labels_of(test_file) == {f"{i + 1}.png": label for i, label in enumerate(test_labels)}


@pytest.mark.slow
@pytest.mark.parametrize("change", [{"recipe": "goodfellow64_rgb"}, {"model": "reader_cnn"}])
def test_predict_on_a_checkpoint_of_another_model_is_one_line(change, workdir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(workdir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, **change}))
    image = tmp_path / "photo.png"
    Image.new("RGB", (60, 40)).save(image)
    result = run_module("svhn_jax.predict", f"--workdir={other}", str(image))
    assert result.returncode == 2 and result.stdout == ""
    line = one_line_error(result)
    # The checkpoint does not restore into the model its config.json names: no checkpoint is usable.
    assert line.startswith(f"no checkpoint in {other / 'checkpoints'} is usable") and len(line) < 500


@pytest.mark.parametrize("name, why", [("../outside.png", "leaves the release folder"),
                                       ("/tmp/outside.png", "leaves the release folder"),
                                       ("sub/../../outside.png", "leaves the release folder"),
                                       ("1.png", "appears twice")])
def test_prepare_refuses_names_leaving_the_release_or_repeated(name, why, tmp_path):
    folder = tmp_path / "train"
    make_release(folder, 3, names=["1.png", "2.png", name])
    out = tmp_path / "out" / "train.h5"
    with pytest.raises(DataError) as e:
        svhn.prepare_split_from_folder(folder, out, "seed32_grey", workers=1)
    assert str(e.value) == f"{folder / 'digitStruct.mat'}: image name {name!r} {why}; refused"
    assert not out.parent.exists()


@pytest.mark.slow
def test_prepare_cli_refuses_an_escaping_name_in_one_line(tmp_path):
    (tmp_path / "secret.png").write_bytes(b"outside the release")
    make_release(tmp_path / "src" / "train", 2, names=["1.png", "../../secret.png"])
    result = run_module("svhn_jax.prepare", "--dataset=svhn", "--splits=train", f"--source_dir={tmp_path / 'src'}",
                        f"--data_dir={tmp_path / 'data'}", "--workers=1")
    assert result.returncode == 1
    assert one_line_error(result) == (f"error: {tmp_path / 'src' / 'train' / 'digitStruct.mat'}: image name "
                                      "'../../secret.png' leaves the release folder; refused")
    assert not list((tmp_path / "data").rglob("*.h5"))


# ------------------------------------------------------------------ 9. predict never touches a user's photos

@pytest.mark.slow
def test_annotate_never_writes_over_a_photo_or_a_file_it_did_not_write(tmp_path):
    """--annotate into the photos' own folder: house.png and house.jpg side by side, a file of the user's
    under the name a drawing would take, and a second house.png from another folder."""
    photos, other = tmp_path / "p", tmp_path / "other"
    photos.mkdir()
    other.mkdir()
    shutil.copy(REPO / "samples" / "svhn_train_2.png", photos / "house.png")
    Image.open(REPO / "samples" / "svhn_train_1.png").convert("RGB").save(photos / "house.jpg", quality=90)
    shutil.copy(REPO / "samples" / "synthetic_1.png", photos / "house.png.annotated.png")  # the user's own
    shutil.copy(REPO / "samples" / "synthetic_2.png", other / "house.png")
    before = {p: p.read_bytes() for p in [*photos.iterdir(), *other.iterdir()]}
    result = run_module("svhn_jax.predict", "--json", f"--annotate={photos}", str(photos), str(other / "house.png"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert [p for p, data in before.items() if p.read_bytes() != data] == []  # every photo, byte for byte
    answers = {Path(a["file"]).relative_to(tmp_path).as_posix(): a["annotated"]
               for a in map(json.loads, result.stdout.splitlines())}
    assert answers == {"p/house.jpg": str(photos / "house.jpg.annotated.png"),
                       "p/house.png": str(photos / "house.png.annotated-2.png"),
                       "p/house.png.annotated.png": str(photos / "house.png.annotated.png.annotated.png"),
                       "other/house.png": str(photos / "house.png.annotated-3.png")}
    for photo, drawn in answers.items():  # each drawing is a new PNG the size of its own photo
        assert Path(drawn) not in before and Image.open(drawn).size == Image.open(tmp_path / photo).size
    # A rerun into another folder replaces its own earlier drawings, and only those.
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    (drawn / "house.jpg.annotated.png").write_bytes(b"a note of the user's")
    for _ in range(2):
        again = run_module("svhn_jax.predict", f"--annotate={drawn}", str(photos / "house.png"),
                           str(photos / "house.jpg"))
        assert again.returncode == 0, again.stderr[-3000:]
    assert (drawn / "house.jpg.annotated.png").read_bytes() == b"a note of the user's"
    assert sorted(p.name for p in drawn.iterdir()) == ["house.jpg.annotated-2.png", "house.jpg.annotated.png",
                                                       "house.png.annotated.png"]


# ------------------------------------------------------------------ 10. score_photos scores only what it read

@pytest.mark.slow
def test_score_photos_never_scores_a_photo_it_did_not_read(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(REPO / "samples" / "svhn_train_2.png", photos / "a.png")
    (photos / "empty.png").write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,number,x,y,w,h\na.png,23,77,25,47,36\nmisspelt.png,19,1,1,10,10\nempty.png,5,1,1,4,4\n")
    result = run_module("svhn_jax.score_photos", f"--labels={labels}", f"--json_out={tmp_path / 's.json'}",
                        str(photos))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.splitlines() == [f"{photos / 'misspelt.png'}: no such file",
                                          f"{photos / 'empty.png'}: empty file"]
    lines = result.stdout.splitlines()
    assert sum("truth" in line for line in lines) == 1 and "a.png" in lines[0]  # only the photo read is scored
    assert [line.split(":")[0] for line in lines[1:3]] == ["no_box", "box"]
    assert all("/1 right" in line for line in lines[1:3])
    assert lines[3] == "2 of the 3 labelled photos not read (named on stderr), so not scored"
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["summary"]["no_box"]["num"] == 1
    assert scores["not_read"] == [{"file": "misspelt.png", "error": "no such file"},
                                  {"file": "empty.png", "error": "empty file"}]

    for folder in (tmp_path / "nonexistent", labels):  # no folder at all: nothing is scored
        nothing = run_module("svhn_jax.score_photos", f"--labels={labels}", str(folder))
        assert nothing.returncode == 1 and nothing.stdout == ""
        assert one_line_error(nothing) == f"error: {folder}: not a folder of photos"


# ------------------------------------------------------------------ 11. --boxes and labels: rows as users write them

@pytest.mark.parametrize("name, text, why", [
    ("labels.csv", "file,number,x,y,w,h\na.png,12,1,2,3,4\nb.png,7,1,2,3\n", "line 3: expected file,number[,x,y,w,h]"),
    ("labels.csv", "a.png,12,inf,1,10,10\n", "line 1: box 'inf,1,10,10' is not four finite numbers"),
    ("labels.csv", "a.png,12,1,1,0,10\n", "line 1: box '1,1,0,10' is not four finite numbers"),
    ("labels.json", '{"file": "a.png", "number": 12}', "expected a JSON list"),
    ("labels.json", '[{"file": "a.png", "number": 12, "box": [1, "two", 3, 4]}]', "entry 1: box "),
    ("labels.json", '[{"file": "a.png", "number": 12, "box": [1, 2, 3, 1e999]}]', "entry 1: box "),
    ("labels.json", '[{"file": "a.png", "number": 1, "box": null}, {"file": "b.png"}]', "entry 2: expected "),
])
def test_malformed_label_rows_are_refused_naming_their_line(name, text, why, tmp_path):
    from svhn_jax.infer.photos import read_labels
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError) as e:
        read_labels(tmp_path / name)
    assert str(e.value).startswith(str(tmp_path / name)) and why in str(e.value), str(e.value)


@pytest.mark.slow
def test_predict_boxes_match_photos_as_the_user_names_them_and_refuse_the_rest(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("svhn_train_2.png", "synthetic_1.png"):
        shutil.copy(REPO / "samples" / name, photos / name)
    labels = tmp_path / "boxes.csv"  # one row by a path from the CSV's folder, one by its bare name
    labels.write_text("file,number,x,y,w,h\nphotos/svhn_train_2.png,23,77,25,47,36\nsynthetic_1.png,19,41,5,28,29\n")
    result = run_module("svhn_jax.predict", "--json", "--notta", f"--boxes={labels}", str(photos))
    assert result.returncode == 0, result.stderr[-3000:]
    boxes = {Path(a["file"]).name: (a["box"], a["box_confidence"]) for a in map(json.loads, result.stdout.splitlines())}
    assert boxes == {"svhn_train_2.png": ([77, 25, 47, 36], None), "synthetic_1.png": ([41, 5, 28, 29], None)}

    for rows, why in [("svhn_train_2.png,23,77,25,47\n", f"{labels} line 1: expected file,number[,x,y,w,h], got 5"),
                      ("svhn_train_2.png,23\n", f"{labels} line 1: 'svhn_train_2.png' has no box x,y,w,h"),
                      ("photos/svhn_train_2.png,23,1,1,9,9\nphotos/typo.png,5,1,1,9,9\n",
                       f"{labels} line 2: 'photos/typo.png' matches none of the photos given and names no file")]:
        labels.write_text(rows)
        refused = run_module("svhn_jax.predict", f"--boxes={labels}", str(photos))
        assert refused.returncode == 2 and refused.stdout == ""
        assert one_line_error(refused).startswith(f"error: {why}"), refused.stderr


@pytest.mark.parametrize("text, rows_or_why", [
    ("a.png,x12\nb.png,5\n", "line 1: a.png: number 'x12' is not a house number"),  # no header: a typo
    ("a.png,²\n", "line 1: a.png: number '²' is not a house number"),
    ("File, Number ,x,y,w,h\na.png,5,1,1,4,4\n", [("a.png", "5")]),  # a header, by its column names
    ("photo,label\n\nb.png,none\n", [("b.png", "")]),
    ("a.png,12\nb.png,5\n./a.png,13\n", "line 3: './a.png' is labelled again (first on line 1)"),
    ("a.png,12\na.png,12\n", "line 2: 'a.png' is labelled again (first on line 1)"),
])
def test_label_headers_are_known_by_their_names_and_repeated_photos_refused(text, rows_or_why, tmp_path):
    from svhn_jax.infer.photos import read_labels
    path = tmp_path / "labels.csv"
    path.write_text(text)
    if isinstance(rows_or_why, str):
        with pytest.raises(ValueError, match=re.escape(f"{path} {rows_or_why}")):
            read_labels(path)
    else:
        assert [(r["file"], r["number"]) for r in read_labels(path)] == rows_or_why
    (tmp_path / "labels.json").write_text('[{"file": "a.png", "number": 1}, {"file": "a.png", "number": 2}]')
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'labels.json'} entry 2: 'a.png' is labelled "
                                                   "again (first on entry 1)")):
        read_labels(tmp_path / "labels.json")


# ------------------------------------------------------------------ 12. user mistakes on the new CLIs: one line

@pytest.fixture
def read_only_folder(tmp_path):
    """A real read-only folder, even for root: a read-only tmpfs (skipped where mounting is not permitted)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.slow
def test_user_mistakes_on_predict_and_score_photos_are_one_line(tmp_path, read_only_folder):
    photo = str(REPO / "samples" / "svhn_train_2.png")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    cases = [
        (("svhn_jax.predict", f"--annotate={a_file}", photo), 2, f"error: --annotate={a_file}: cannot write there "
                                                                 "(not a folder)"),
        (("svhn_jax.predict", f"--annotate={a_file}/drawn", photo), 2,
         f"error: --annotate={a_file}/drawn: cannot write there (Not a directory)"),
        (("svhn_jax.predict", f"--annotate={read_only_folder}", photo), 2,
         f"error: --annotate={read_only_folder}: cannot write there (Read-only file system)"),
        (("svhn_jax.predict", "--box=inf,1,10,10", photo), 2,
         "error: --box='inf,1,10,10': expected four finite numbers x,y,w,h"),
        (("svhn_jax.score_photos", "--labels=samples/labels.csv", f"--json_out={a_file}/s.json", "samples"), 1,
         f"error: --json_out={a_file}/s.json: cannot write there (not a folder)"),
        (("svhn_jax.score_photos", "--labels=samples/labels.csv", f"--json_out={read_only_folder}/s.json",
          "samples"), 1, f"error: --json_out={read_only_folder}/s.json: cannot write there (Read-only file system)"),
    ]
    for args, status, line in cases:
        result = run_module(*args)
        assert result.returncode == status and result.stdout == "", (args, result.stderr[-3000:])
        assert one_line_error(result) == line
    assert a_file.read_text() == "not a folder" and list(read_only_folder.iterdir()) == []


@pytest.mark.slow
def test_fewer_localiser_scenes_than_a_batch_is_one_line(tmp_path):
    result = run_module("svhn_jax.main", "--config=configs/localiser.py", "--config.num_scenes_train=8",
                        "--config.batch_size=16", f"--config.data_dir={tmp_path / 'data'}",
                        f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 1
    assert one_line_error(result) == ("error: config key num_scenes_train (8) must be at least batch_size (16): "
                                      "a training batch is drawn from the scenes")
    assert not (tmp_path / "data").exists()  # refused before anything is rendered


@pytest.fixture
def localiser_run(tmp_path):
    """A real localiser workdir: configs/localiser.py's config.json and an orbax checkpoint of its
    freshly initialised state (step 0; what a run writes, without the training)."""
    import jax

    from configs import localiser
    from svhn_jax.core import workdir as workdir_lib
    from svhn_jax.core.state import create_train_state, make_optimizer
    from svhn_jax.models import create_model
    config, path = localiser.get_config(), tmp_path / "localiser_run"
    model, (tx, _) = create_model(config), make_optimizer(config)
    state = create_train_state(jax.random.key(0), model, tx, (128, 128, 3))
    path.mkdir()
    workdir_lib.start(config, path)
    workdir_lib.save_checkpoint(workdir_lib.checkpoint_manager(path, config), 0, state, path)
    return path


@pytest.mark.slow
def test_a_run_of_the_other_kind_is_one_line(workdir, localiser_run):
    photo = str(REPO / "samples" / "svhn_train_2.png")
    reader_line = f"{workdir}: that workdir holds a reader (model seed_cnn), not a localiser; give it as --workdir"
    localiser_line = f"{localiser_run}: that workdir holds a localiser, not a reader; give it as --localiser"
    for args, status, line in [(("svhn_jax.predict", f"--workdir={localiser_run}", photo), 2, localiser_line),
                               (("svhn_jax.predict", f"--localiser={workdir}", photo), 2, reader_line),
                               (("svhn_jax.score_photos", "--labels=samples/labels.csv", f"--localiser={workdir}",
                                 "samples"), 2, reader_line),  # score_photos says it as predict does
                               (("svhn_jax.score_photos", "--labels=samples/labels.csv",
                                 f"--workdir={localiser_run}", "samples"), 2, localiser_line)]:
        result = run_module(*args)
        assert result.returncode == status and result.stdout == "", (args, result.stderr[-3000:])
        assert one_line_error(result) == line
    assert run_module("svhn_jax.predict", f"--workdir={workdir}", f"--localiser={localiser_run}",
                      photo).returncode == 0  # each in its place


# ------------------------------------------------------------------ 13. signals: only the command reports them

@pytest.mark.slow
def test_a_run_that_renders_with_worker_processes_and_succeeds_prints_no_error(tmp_path):
    """1,000 synthetic test images are rendered by a pool of worker processes, ended when done: they must
    not report their end as an interruption (only the command's own process reports a signal)."""
    result = run_module("svhn_jax.main", "--config=configs/test.py", "--config.num_synthetic_test=1000",
                        "--config.num_train_steps=1", f"--config.data_dir={tmp_path / 'data'}",
                        f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "error:" not in result.stderr and "Traceback" not in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_rendering_scenes_is_one_line(signum, tmp_path):
    """SIGTERM to the command (as a scheduler sends it), Ctrl-C to the whole process group (as a terminal
    sends it): one line, exit 128 + signal, no temporary file left. The signal comes once the workers have
    rendered a chunk (the progress bar says so), with 159 chunks of each split still to render: minutes of
    work however fast the machine, so it always lands while they render."""
    data, output = tmp_path / "data", tmp_path / "stderr.txt"
    with open(output, "w") as err, open(tmp_path / "stdout.txt", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "svhn_jax.main", "--config=configs/localiser.py",
                                 "--config.num_scenes_train=40000", "--config.num_scenes_test=40000",
                                 f"--config.data_dir={data}", f"--workdir={tmp_path / 'run'}"],
                                cwd=REPO, env=_env(), stdout=out, stderr=err, start_new_session=True)
    try:
        deadline = time.time() + 240
        while (not re.search(r"render [^:\r\n]+: +\d+%\|[^|]*\| *[1-9]\d*/160", output.read_text())
               and proc.poll() is None and time.time() < deadline):
            time.sleep(0.05)
        assert proc.poll() is None and leftovers(data), ("no chunk rendered, or the run ended", output.read_text())
        if signum == signal.SIGTERM:
            proc.send_signal(signum)
        else:
            os.killpg(proc.pid, signum)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = output.read_text()
    assert proc.returncode == 128 + signum, err[-3000:]
    assert one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", err)) == (
        f"error: interrupted ({signal.Signals(signum).name})")
    assert leftovers(data) == [] and not list(data.rglob("*.h5"))


# ------------------------------------------------------------------ 14. messages that say what happened

@pytest.mark.slow
def test_a_box_partly_outside_the_photo_is_clipped_and_said_and_one_wholly_outside_quoted(tmp_path):
    photo = str(REPO / "samples" / "svhn_train_2.png")  # 199 x 83
    result = run_module("svhn_jax.predict", "--json", "--box=180,25,42,32", photo)
    assert result.returncode == 0, result.stderr[-3000:]
    a = json.loads(result.stdout)
    assert a["box"] == [180, 25, 19, 32] and a["box_clipped_from"] == [180, 25, 42, 32]
    text = run_module("svhn_jax.predict", "--box=180,25,42,32", photo)
    assert text.returncode == 0 and text.stdout.rstrip().endswith(
        "box 180,25,19,32: clipped to the photo from 180,25,42,32)"), text.stdout
    outside = run_module("svhn_jax.predict", "--box=201,25,42,32", photo)
    assert outside.returncode == 1 and outside.stdout == ""
    assert one_line_error(outside) == f"{photo}: the box 201,25,42,32 lies outside the 199x83 photo"



@pytest.mark.slow
def test_no_usable_checkpoint_names_the_reason_where_warnings_are_hidden(workdir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(workdir, broken)
    for checkpoint in (broken / "checkpoints").iterdir():
        (checkpoint / "default" / "_METADATA").unlink()
    result = run_module("svhn_jax.predict", f"--workdir={broken}", str(REPO / "samples" / "svhn_train_2.png"))
    assert result.returncode == 2 and result.stdout == ""
    line = one_line_error(result)
    assert line.startswith(f"no checkpoint in {broken / 'checkpoints'} is usable (steps 8, 4; the newest: it does "
                           "not restore: ") and "see the warnings above" not in line and len(line) < 500, line
