"""predict: image decoding of every format and mode, bad inputs, and the CLI on a tiny trained run."""
from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_module
from PIL import Image

from svhn_jax.cli import predict
from svhn_jax.infer import photos, whole_photo
from svhn_jax.infer import reader as reading
from svhn_jax.infer.reader import Reader

# ----------------------------------------------------------------------------- files

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows) -> bytes:
    """A PNG written by hand (no filter), `rows` yielding each row's bytes; the data is streamed."""
    z = zlib.compressobj(9)
    data = b"".join(z.compress(b"\0" + row) for row in rows) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
            + _png_chunk(b"IEND", b""))


def save(im: Image.Image, path: Path, **kwargs) -> Path:
    im.save(path, **kwargs)
    return path


def good_files(folder: Path) -> dict[str, np.ndarray]:
    """Writes one image per format / mode; returns name -> the RGB pixels expected after loading."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (12, 20), dtype=np.uint8)
    expect = {}
    save(Image.fromarray(rgb), folder / "rgb.png")
    expect["rgb.png"] = rgb
    save(Image.fromarray(grey), folder / "grey.png")
    expect["grey.png"] = np.repeat(grey[..., None], 3, -1)
    save(Image.fromarray(rgb), folder / "rgb.bmp")
    expect["rgb.bmp"] = rgb
    save(Image.fromarray(rgb), folder / "lossless.webp", lossless=True)
    expect["lossless.webp"] = rgb
    # Transparent pixels are composited over white: half-transparent red -> (255, 127/128, 127/128).
    rgba = np.zeros((12, 20, 4), np.uint8)
    rgba[..., 0], rgba[:, :10, 3], rgba[:, 10:, 3] = 255, 0, 128
    save(Image.fromarray(rgba), folder / "rgba.png")
    expect["rgba.png"] = np.concatenate([np.full((12, 10, 3), 255, np.uint8),
                                         np.broadcast_to(np.array([255, 127, 127], np.uint8), (12, 10, 3))], 1)
    la = np.stack([np.zeros((12, 20), np.uint8), np.full((12, 20), 0, np.uint8)], -1)
    save(Image.fromarray(la, "LA"), folder / "la.png")
    expect["la.png"] = np.full((12, 20, 3), 255, np.uint8)
    palette = Image.fromarray(rgb).quantize(16)
    save(palette, folder / "palette.png")
    expect["palette.png"] = np.asarray(palette.convert("RGB"))
    gif = Image.fromarray(rgb).quantize(16)
    save(gif, folder / "anim.gif", save_all=True, append_images=[Image.new("P", (20, 12))])
    expect["anim.gif"] = np.asarray(gif.convert("RGB"))  # the first frame
    cmyk = Image.new("CMYK", (20, 12), (0, 255, 255, 0))  # pure red in CMYK
    save(cmyk, folder / "cmyk.jpg", quality=100)
    expect["cmyk.jpg"] = np.broadcast_to(np.array([255, 0, 0], np.uint8), (12, 20, 3))
    grey16 = np.array([[0, 257 * 128, 65535]], np.uint16).repeat(4, 0)
    save(Image.fromarray(grey16), folder / "grey16.png")
    expect["grey16.png"] = np.repeat(np.array([[0, 128, 255]], np.uint8).repeat(4, 0)[..., None], 3, -1)
    rgb16 = np.zeros((3, 4, 3), ">u2")
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 257 * 100, 0
    (folder / "rgb16.png").write_bytes(raw_png(4, 3, 16, 2, (r.tobytes() for r in rgb16)))
    expect["rgb16.png"] = np.broadcast_to(np.array([255, 100, 0], np.uint8), (3, 4, 3))
    # EXIF orientation 6: the stored 20x12 picture is shown turned 90 degrees clockwise (12 wide).
    exif = Image.Exif()
    exif[0x0112] = 6
    save(Image.fromarray(rgb), folder / "rotated.png", exif=exif)
    expect["rotated.png"] = np.rot90(rgb, k=-1)
    blocks = np.zeros((16, 32, 3), np.uint8)
    blocks[:, :16], blocks[:, 16:] = (200, 40, 90), (20, 180, 250)
    save(Image.fromarray(blocks), folder / "photo.JPEG", quality=95, subsampling=0)
    expect["photo.JPEG"] = blocks
    return expect


def bad_files(folder: Path) -> dict[str, str]:
    """Writes unreadable files; returns name -> a phrase its error line must hold."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not a picture\n")
    whole = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(whole, "PNG")
    (folder / "truncated.png").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    # A real 30,000 x 30,000 one-bit PNG (~100 KB on disk, 900 megapixels once decoded).
    (folder / "bomb.png").write_bytes(raw_png(30_000, 30_000, 1, 0, (bytes(3750) for _ in range(30_000))))
    save(Image.new("RGB", (3, 2), (9, 9, 9)), folder / "tiny.png")  # under photos.MIN_SIDE on a side
    return {"empty.png": "empty file", "text.png": "not a readable image", "truncated.png": "damaged",
            "bomb.png": "too large (30000x30000", "tiny.png": "too small to read (3x2 pixels"}


# ----------------------------------------------------------------------------- decoding (no model)

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    return folder, good_files(folder / "good"), bad_files(folder / "bad")


def test_every_format_and_mode_decodes_to_rgb(files):
    folder, expect, _ = files
    for name, pixels in expect.items():
        image = photos.load_image(folder / "good" / name)
        assert image.dtype == np.uint8 and image.shape == pixels.shape, name
        tolerance = 8 if name.endswith((".jpg", ".JPEG")) else 1
        assert np.abs(image.astype(int) - pixels).max() <= tolerance, name


def test_bad_files_raise_one_line_errors(files):
    folder, _, bad = files
    for name, phrase in bad.items():
        with pytest.raises(photos.ImageError) as e:
            photos.load_image(folder / "bad" / name)
        assert phrase in str(e.value) and "\n" not in str(e.value), (name, str(e.value))


def test_find_images_expands_folders_and_flags_missing_paths(files, tmp_path):
    folder, expect, _ = files
    (tmp_path / "notes.txt").write_text("no pictures here")
    found = list(predict.find_images([str(folder / "good"), str(tmp_path), str(tmp_path / "nope.png")]))
    assert [Path(f).name for f, e in found[: len(expect)]] == sorted(expect)
    assert all(e is None for _, e in found[: len(expect)])
    assert found[len(expect):] == [(str(tmp_path), "no images (.png, .jpg, .jpeg, .bmp, .gif, .webp) in this folder"),
                                   (str(tmp_path / "nope.png"), "no such file or folder")]


def test_parse_box_and_answer():
    assert predict.parse_box("3,4,10.4,20") == (3, 4, 10, 20)
    for text in ("1,2,3", "a,b,c,d", "0,0,0,5"):
        with pytest.raises(ValueError):
            predict.parse_box(text)
    read = {"reading": "42", "confidence": 0.5, "box": [3, 4, 20, 10], "box_confidence": 0.8, "reason": None}
    answer = whole_photo.answer
    assert answer("a.png", read, 0.4) == {"file": "a.png", "number": "42", "reading": "42", "confidence": 0.5,
                                          "box": [3, 4, 20, 10], "box_confidence": 0.8}
    assert predict.format_answer(answer("a.png", read, 0.4)) == "a.png: 42 (confidence 0.500, box 3,4,20,10)"
    low = answer("a.png", {**read, "confidence": 0.3}, 0.4)
    assert low["number"] is None and low["reason"] == "confidence below 0.4"
    assert predict.format_answer(low) == "a.png: unsure, best guess 42 at 0.300 (confidence below 0.4, box 3,4,20,10)"
    nothing = answer("a.png", {"reading": "", "confidence": 0.0, "box": None, "reason": "no digit read"}, 0.0)
    assert nothing["number"] is None and predict.format_answer(nothing) == (
        "a.png: no number (no digit read; confidence 0.000)")


# ----------------------------------------------------------------------------- the CLI on a trained run

@pytest.mark.slow
def test_cli_answers_good_files_and_names_each_bad_one(files, workdir, tmp_path):
    folder, expect, bad = files
    blank = save(Image.new("RGB", (64, 40), (128, 128, 128)), tmp_path / "blank.png")
    cache = tmp_path / "cache"
    args = [f"--workdir={workdir}", "--localiser=none", f"--cache_dir={cache}", "--json", str(folder / "good"),
            str(folder / "bad"),
            str(tmp_path / "missing.jpg"), str(tmp_path / "no_images"), str(blank)]
    (tmp_path / "no_images").mkdir()
    first = run_module("svhn_jax.predict", *args)
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    by_file = {Path(line["file"]).name: line for line in lines}
    assert len(lines) == len(expect) + len(bad) + 3
    for name in expect:
        a = by_file[name]
        assert set(a) - {"reason"} == {"file", "number", "reading", "confidence", "box", "box_confidence"}
        assert 0.0 <= a["confidence"] <= 1.0 and a["box"] is None  # the whole photo read: no box
        answered = a["reading"] and a["confidence"] >= whole_photo.DEFAULT_MIN_CONFIDENCE  # the default threshold
        assert a["number"] == (a["reading"] if answered else None) and (a["reading"] == "" or a["reading"].isdigit())
        assert answered or a["reason"] in ("no digit read", f"confidence below {whole_photo.DEFAULT_MIN_CONFIDENCE:g}")
    for name, phrase in bad.items():
        assert phrase in by_file[name]["error"]
    assert by_file["missing.jpg"]["error"] == "no such file or folder"
    assert by_file["no_images"]["error"].startswith("no images")
    blank_confidence = by_file["blank.png"]["confidence"]
    assert blank_confidence < 0.9
    cached = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert cached, "the first call fills the compilation cache"

    # Text output; the blank image is unreadable at 0.9; nothing new is compiled the second time.
    second = run_module("svhn_jax.predict", f"--workdir={workdir}", "--localiser=none", f"--cache_dir={cache}",
                        "--verbosity=-1",
                        "--min_confidence=0.9", str(blank), str(folder / "good" / "rgb.png"),
                        str(folder / "bad" / "empty.png"), env={"JAX_LOG_COMPILES": "1"})
    assert "Persistent compilation cache hit for 'jit_infer'" in second.stderr
    assert second.returncode == 1 and "Traceback" not in second.stderr
    out = second.stdout.splitlines()
    if by_file["blank.png"]["reading"]:  # a guess below the threshold is said as one, not as "no number"
        assert out[0] == (f"{blank}: unsure, best guess {by_file['blank.png']['reading']} at {blank_confidence:.3f} "
                          "(confidence below 0.9)")
    else:
        assert out[0].startswith(f"{blank}: no number (") and out[0].endswith(f"confidence {blank_confidence:.3f})")
    assert out[1].startswith(f"{folder / 'good' / 'rgb.png'}: ")
    assert f"{folder / 'bad' / 'empty.png'}: empty file" in second.stderr.splitlines()
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == cached


@pytest.mark.slow
def test_box_crops_as_in_training_and_all_good_exits_zero(workdir, tmp_path):
    from svhn_jax.data import preprocess as pp
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)
    save(Image.fromarray(photo), tmp_path / "photo.png")
    reader = Reader.load(workdir)
    expected = pp.apply_recipe(photo, np.array([[30, 20, 40, 25]], np.float64), reader.config.recipe)
    got = reading.preprocess(photos.load_image(tmp_path / "photo.png"), reader.config.recipe, (30, 20, 40, 25))
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(photos.ImageError, match="outside"):
        reading.preprocess(photo, reader.config.recipe, (500, 20, 40, 25))
    out, err = io.StringIO(), io.StringIO()
    status = predict.run(reader, [str(tmp_path / "photo.png")], as_json=True, box=(30, 20, 40, 25), tta=False,
                         out=out, err=err)
    assert status == 0 and err.getvalue() == ""
    a = json.loads(out.getvalue())
    # The SVHN reader's opinion on the box is its reading of the training crop; the answer is the pipeline's
    # (both readers on the box, the calibrator's probability: issue 27), the same as read_photo's.
    length, digits, confidence = reader.read_crops(expected[None])
    svhn_reading = "".join(str(d) for d in digits[0][: length[0]])
    image = photos.load_image(tmp_path / "photo.png")
    assert whole_photo.read_box(reader, image, (30, 20, 40, 25), tta=False) == (
        svhn_reading, pytest.approx(float(confidence[0])))
    result = whole_photo.read_photo(reader, None, image, (30, 20, 40, 25), tta=False)
    assert a["reading"] == result["reading"] and a["confidence"] == pytest.approx(result["confidence"])
    assert a["box"] == [30, 20, 40, 25] and a["box_confidence"] is None
    assert not svhn_reading or svhn_reading in [a["reading"]] + [r for r, _ in result["next_readings"]]


@pytest.mark.slow
def test_cli_without_a_trained_run_is_one_line(tmp_path):
    result = run_module("svhn_jax.predict", f"--workdir={tmp_path}", str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"{tmp_path} holds no run (no config.json)"
