"""The real-SVHN data path on a small release in the real format, served over HTTP on 127.0.0.1."""
from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import run_module
from PIL import Image

from svhn_jax.data import preprocess, store
from svhn_jax.data.svhn import ingest as svhn
from svhn_jax.data.svhn import release as svhn_release
from svhn_jax.data.svhn.digitstruct import DigitBox, Entry, write_digitstruct

# name, (width, height), boxes (label, left, top, width, height); label 10 is the digit 0.
RELEASE = [
    ("1.png", (60, 40), [(1, 10, 8, 8, 16), (10, 19, 9, 8, 16)]),  # hand-computed crop below
    ("2.png", (30, 30), [(5, 11, 6, 9, 18)]),
    ("3.png", (80, 32), [(2, 20, 4, 8, 20), (3, 29, 4, 8, 20), (4, 38, 5, 8, 20)]),
    ("4.png", (90, 30), [(d, 5 + 12 * i, 5, 10, 18) for i, d in enumerate((1, 2, 3, 4, 5, 6))]),  # 6: dropped
    ("5.png", (40, 25), [(7, -1, 2, 12, 21), (8, 30, 2, 12, 24)]),  # partly outside: clipped, kept
]
# 1.png: union (10, 8)-(27, 25), 17 x 17, grown by 30 % to 22.1 about (18.5, 16.5):
# (7.45, 5.45)-(29.55, 27.55) -> whole pixels (7, 5)-(30, 28).
CROP_1 = (7, 5, 30, 28)


def _image(size: tuple[int, int], seed: int) -> np.ndarray:
    w, h = size
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


def _entries(spec) -> list[Entry]:
    return [Entry(name, tuple(DigitBox(l, x, y, w, h) for l, x, y, w, h in boxes)) for name, _, boxes in spec]


def make_release(root: Path, split: str = "train", spec=RELEASE) -> Path:
    folder = root / split
    folder.mkdir(parents=True)
    for i, (name, size, _) in enumerate(spec):
        Image.fromarray(_image(size, i)).save(folder / name)
    write_digitstruct(folder / "digitStruct.mat", _entries(spec))
    return folder


def pack(folder: Path, archive: Path) -> bytes:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive.read_bytes()


def archive_of(data: bytes) -> svhn_release.Archive:
    return svhn_release.Archive(len(data), hashlib.md5(data).hexdigest())


class Server(http.server.ThreadingHTTPServer):
    """Serves `files` by URL path; honours `Range: bytes=N-`; cuts a response after `cuts[path]` bytes once."""

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files, self.cuts, self.requests = files, {}, []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server: Server = self.server
        rng = self.headers.get("Range")
        server.requests.append((self.path, rng))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = server.cuts.pop(self.path, None)
        self.wfile.write(data[start:] if cut is None else data[start:start + cut])
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    folder = make_release(root)
    data = pack(folder, root / "train.tar.gz")
    return folder, data


@pytest.fixture
def server(release):
    s = Server({"/svhn/train.tar.gz": release[1]})
    thread = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield s
    s.shutdown()
    s.server_close()


def test_preprocess_crop_boxes_by_hand():
    boxes = np.array([b[1:] for b in RELEASE[0][2]], float)
    assert preprocess.union_box(boxes) == (10, 8, 27, 25)
    assert preprocess.crop_box(boxes, 40, 60, "seed32_grey") == CROP_1
    # square first: 22 x 10 -> 22 x 22 -> 28.6 about (21, 15): (6.7, 0.7)-(35.3, 29.3) -> clipped to 30 rows
    assert preprocess.crop_box(np.array([[10, 10, 22, 10]]), 30, 50, "goodfellow64_rgb") == (6, 0, 36, 30)
    assert preprocess.crop_box(np.array([[-1, 2, 12, 21]]), 25, 40, "seed32_grey") == (0, 0, 13, 25)
    with pytest.raises(ValueError, match="outside the 40x25 image"):
        preprocess.crop_box(np.array([[40, 2, 5, 5]]), 25, 40, "seed32_grey")
    with pytest.raises(ValueError, match="is empty"):
        preprocess.crop_box(np.array([[4, 2, 0, 5]]), 25, 40, "seed32_grey")


def test_preprocess_grey_and_shapes():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    assert preprocess.to_grey(rgb)[..., 0].tolist() == [[76, 150, 29, 255]]  # ITU-R 601-2 luma
    image = _image((50, 20), 0)
    boxes = np.array([[10, 4, 8, 12]])
    box = preprocess.crop_box(boxes, 20, 50, "seed32_grey")
    np.testing.assert_array_equal(preprocess.apply_recipe(image, boxes, "seed32_grey"),  # the composition
                                  preprocess.resize(preprocess.to_grey(preprocess.crop(image, box)), 32))
    assert preprocess.apply_recipe(image, boxes, "goodfellow64_rgb").shape == (64, 64, 3)
    assert preprocess.resize_whole(image, "seed32_grey").shape == (32, 32, 1)
    assert preprocess.resize_whole(image[..., :1], "goodfellow64_rgb").shape == (64, 64, 3)
    assert preprocess.image_shape("seed32_grey") == (32, 32, 1)


def test_prepare_over_http_writes_the_contract(server, release, tmp_path):
    known = {"train": archive_of(release[1])}
    stats = svhn.prepare(["train"], "seed32_grey", tmp_path, base_url=server.url + "/svhn", known=known,
                         workers=2, progress=False, log=lambda _: None)
    path = tmp_path / "svhn" / "seed32_grey" / "train.h5"
    assert stats[0].path == path and stats[0].num_examples == 4 and stats[0].num_dropped == 1
    split = store.read_split(path)
    assert split.filenames.tolist() == ["1.png", "2.png", "3.png", "5.png"]
    assert split.lengths.tolist() == [2, 1, 3, 2]
    assert store.decode_labels(split.lengths, split.digits) == ["10", "5", "234", "78"]
    assert split.digits[0].tolist() == [1, 0, 10, 10, 10]
    assert split.images.shape == (4, 32, 32, 1) and split.images.dtype == np.uint8
    assert split.attrs["num_dropped"] == 1 and split.attrs["num_skipped"] == 0
    assert split.attrs["recipe"] == "seed32_grey"
    x0, y0, x1, y1 = CROP_1  # exactly the hand-computed box, cropped and resized independently
    expected = Image.fromarray(_image((60, 40), 0)).crop(CROP_1).convert("L").resize((32, 32), Image.BILINEAR)
    np.testing.assert_array_equal(split.images[0, ..., 0], np.asarray(expected))
    assert (tmp_path / "svhn" / "raw" / "train" / "digitStruct.mat").is_file()
    assert svhn.prepare(["train"], "seed32_grey", tmp_path, known=known, log=lambda _: None) == []  # done


def test_download_resumes_after_a_cut(server, release, tmp_path):
    data = release[1]
    server.cuts["/svhn/train.tar.gz"] = len(data) // 3
    dest = svhn_release.download(server.url + "/svhn/train.tar.gz", tmp_path / "train.tar.gz", archive_of(data),
                         progress=False)
    assert dest.read_bytes() == data and not (tmp_path / "train.tar.gz.part").exists()
    assert server.requests == [("/svhn/train.tar.gz", None), ("/svhn/train.tar.gz", f"bytes={len(data) // 3}-")]


def test_download_resumes_across_runs(server, release, tmp_path):
    data = release[1]
    server.cuts["/svhn/train.tar.gz"] = 1000
    with pytest.raises(svhn_release.DataError, match="1,000 of .* bytes kept .* rerun to resume"):
        svhn_release.download(server.url + "/svhn/train.tar.gz", tmp_path / "t.tar.gz", archive_of(data), retries=0,
                      progress=False)
    assert (tmp_path / "t.tar.gz.part").stat().st_size == 1000
    svhn_release.download(server.url + "/svhn/train.tar.gz", tmp_path / "t.tar.gz", archive_of(data), progress=False)
    assert (tmp_path / "t.tar.gz").read_bytes() == data and server.requests[-1][1] == "bytes=1000-"


def test_wrong_checksum_is_rejected(server, release, tmp_path):
    wrong = svhn_release.Archive(len(release[1]), "0" * 32)
    with pytest.raises(svhn_release.ChecksumError, match="MD5"):
        svhn_release.download(server.url + "/svhn/train.tar.gz", tmp_path / "train.tar.gz", wrong, progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(svhn_release.ChecksumError, match="bytes, expected"):  # a local archive is checked too
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "train.tar.gz").write_bytes(release[1][:-1])
        svhn_release.split_folder("train", tmp_path / "raw", source_dir=tmp_path / "src",
                          known={"train": archive_of(release[1])})
    assert not (tmp_path / "raw" / "train").exists()


def test_offline_says_what_to_download(tmp_path):
    with pytest.raises(svhn_release.DataError) as e:
        svhn_release.split_folder("test", tmp_path, base_url="http://127.0.0.1:9", progress=False)
    assert "cannot download http://127.0.0.1:9/test.tar.gz" in str(e.value)
    assert f"{tmp_path / 'test.tar.gz'}" in str(e.value) and "\n" not in str(e.value)


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in members:
            info.size = len(payload) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return path


@pytest.mark.parametrize("bad", ["../evil.txt", "/tmp/evil.txt", "train/../../evil.txt", "symlink"])
def test_extraction_refuses_escaping_members(tmp_path, bad):
    good = tarfile.TarInfo("train/1.png")
    if bad == "symlink":
        evil = tarfile.TarInfo("train/link")
        evil.type, evil.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        evil = tarfile.TarInfo(bad)
    archive = _tar(tmp_path / "train.tar.gz", [(good, b"x"), (evil, b"evil")])
    with pytest.raises(svhn_release.UnsafeArchiveError, match="refused"):
        svhn_release.extract(archive, "train", tmp_path / "raw")
    assert not (tmp_path / "raw" / "train").exists() and list((tmp_path / "raw").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_bad_inputs_are_skipped_and_counted_or_fatal_with_strict(tmp_path):
    spec = [
        ("1.png", (30, 20), [(1, 5, 3, 6, 12)]),
        ("2.png", (30, 20), [(2, 5, 3, 6, 12)]),        # corrupt: not a PNG at all
        ("3.png", (30, 20), [(3, 5, 3, 6, 12)]),        # truncated
        ("4.png", (30, 20), [(4, 5, 3, 6, 12)]),        # missing
        ("5.png", (30, 20), [(5, 31, 3, 6, 12)]),       # box outside the image
        ("6.png", (30, 20), [(11, 5, 3, 6, 12)]),       # label outside 1-10
        ("7.png", (30, 20), [(7, 5, 3, 6, 12), (10, 12, 3, 6, 12)]),
    ]
    folder = make_release(tmp_path, spec=spec)
    (folder / "2.png").write_bytes(b"not a png at all")
    (folder / "3.png").write_bytes((folder / "3.png").read_bytes()[:60])
    (folder / "4.png").unlink()
    out = tmp_path / "out.h5"
    stats = svhn.prepare_split_from_folder(folder, out, "goodfellow64_rgb", workers=1)
    split = store.read_split(out)
    assert split.filenames.tolist() == ["1.png", "7.png"] and split.images.shape == (2, 64, 64, 3)
    assert stats.num_skipped == split.attrs["num_skipped"] == 5
    messages = split.attrs["skipped"].splitlines()
    for name, why in (("6.png", "label 11 outside 1-10"), ("2.png", "unreadable image"),
                      ("3.png", "unreadable image"), ("4.png", "missing file"), ("5.png", "outside the 30x20")):
        assert any(m.startswith(str(folder / name)) and why in m for m in messages), (name, messages)
    before = out.read_bytes()
    with pytest.raises(svhn.BadInputError, match=r"6\.png: label 11 outside 1-10"):
        svhn.prepare_split_from_folder(folder, out, "goodfellow64_rgb", strict=True, workers=1)
    write_digitstruct(folder / "digitStruct.mat", _entries(spec[:5]))
    with pytest.raises(svhn.BadInputError, match=r"2\.png: unreadable image"):
        svhn.prepare_split_from_folder(folder, out, "goodfellow64_rgb", strict=True, workers=1)
    assert out.read_bytes() == before  # failed runs left the prepared file alone
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out.h5")] == ["out.h5"]


@pytest.mark.slow
def test_cli_ingests_an_extracted_folder_and_fails_in_one_line(release, tmp_path):
    source = release[0].parent
    ok = run_module("svhn_jax.prepare", "--dataset=svhn", "--splits=train", f"--source_dir={source}",
                    f"--data_dir={tmp_path}", "--workers=1")
    assert ok.returncode == 0, ok.stderr
    with h5py.File(tmp_path / "svhn" / "seed32_grey" / "train.h5", "r") as f:
        assert f["images"].shape == (4, 32, 32, 1) and f.attrs["num_dropped"] == 1
    bad = run_module("svhn_jax.prepare", "--dataset=svhn", "--splits=test", f"--source_dir={source}",
                     f"--data_dir={tmp_path}")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == (
        f"error: {source}: holds neither test/digitStruct.mat nor test.tar.gz")
