"""The photo page (`python -m svhn_jax.demo`): its JSON endpoint in process (Starlette's TestClient),
and the whole page served by a real server process and driven in a real headless Chromium.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` and selenium (``.ci/run``
installs them); it skips, saying what is missing, elsewhere. With ``SVHN_JAX_DEMO_SCREENSHOT=PATH``
it also writes its screenshot of the answered sample there (how ``docs/figures/demo.png`` is made).
"""
from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, module_env, run_module, start_module

SAMPLE = REPO / "samples" / "svhn_train_2.png"  # the number is 23
NOT_AN_IMAGE_LINE = "notes.txt: not a readable image (unknown format)"
HAS_STARLETTE = all(importlib.util.find_spec(m) for m in ("starlette", "python_multipart", "httpx2"))


# ----------------------------------------------------------------------------- the JSON endpoint

@pytest.fixture(scope="module")
def client():
    if not HAS_STARLETTE:
        pytest.skip("needs starlette and python-multipart (pip install -e '.[demo]') and httpx2 ('.[test]')")
    from starlette.testclient import TestClient

    from svhn_jax.cli import demo
    from svhn_jax.infer.localiser import Localiser
    from svhn_jax.infer.reader import Reader
    pipeline = demo.Pipeline(Reader.load(), Localiser.load())
    with TestClient(demo.create_app(pipeline, REPO / "samples", max_upload=1024 * 1024),
                    base_url="http://127.0.0.1") as c:
        c.pipeline = pipeline
        yield c


def test_page_lists_the_samples_and_serves_only_them(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and "http" not in page.text.split("<script>")[0]
    info = client.get("/api/info").json()
    assert "svhn_train_2.png" in info["samples"] and "labels.csv" not in info["samples"]
    assert info["max_upload_bytes"] == 1024 * 1024
    assert client.get("/samples/svhn_train_2.png").content == SAMPLE.read_bytes()
    for name in ("labels.csv", "..%2Fpyproject.toml"):
        missing = client.get(f"/samples/{name}")
        assert missing.status_code == 404 and "error" in missing.json()


def test_read_answers_what_predict_answers_with_the_photo_drawn(client):
    from PIL import Image

    from svhn_jax.cli import predict
    from svhn_jax.infer import whole_photo
    answer = client.post("/api/read", files={"photo": ("svhn_train_2.png", SAMPLE.read_bytes(), "image/png")})
    assert answer.status_code == 200, answer.text
    a = answer.json()
    printed = io.StringIO()  # predict --json at its default --min_confidence, on the same models
    assert predict.run(client.pipeline.reader, [str(SAMPLE)], localiser=client.pipeline.localiser, as_json=True,
                       min_confidence=whole_photo.DEFAULT_MIN_CONFIDENCE, out=printed) == 0
    expected = {**json.loads(printed.getvalue()), "file": "svhn_train_2.png"}
    assert {k: a[k] for k in expected} == expected and a["number"] == "23"
    # the localiser's confidence in the box: None when a text line, not its box, gave the answer
    assert 0.0 <= a["no_number"] < 0.5 and a["seconds"] > 0
    assert a["box_confidence"] is None or 0.0 < a["box_confidence"] <= 1.0
    result, _, _ = whole_photo.read_file(client.pipeline.reader, client.pipeline.localiser, str(SAMPLE))
    assert a["next_readings"] == result["next_readings"]  # other readings, less confident than the answer
    assert all(r != "23" and r.isdigit() and 0.0 < c <= a["confidence"] for r, c in a["next_readings"])
    header, data = a["picture"].split(",", 1)
    assert header == "data:image/png;base64"
    picture = Image.open(io.BytesIO(base64.b64decode(data)))
    photo = Image.open(SAMPLE)
    assert picture.format == "PNG" and max(picture.size) == 480  # a small photo is drawn larger
    assert picture.width / picture.height == pytest.approx(photo.width / photo.height, rel=0.02)


def test_a_photo_without_a_number_answers_null_with_a_reason(client):
    from PIL import Image
    wall = Image.new("RGB", (320, 240), (182, 160, 140))
    wall.paste((120, 90, 70), (0, 190, 320, 240))
    png = io.BytesIO()
    wall.save(png, format="PNG")
    a = client.post("/api/read", files={"photo": ("wall.png", png.getvalue(), "image/png")}).json()
    assert a["number"] is None and "no house number" in a["reason"] and a["box"] is None


@pytest.mark.parametrize("files, status, message", [
    ({"photo": ("notes.txt", b"not a photo\n", "text/plain")}, 422, NOT_AN_IMAGE_LINE),
    ({"photo": ("empty.png", b"", "image/png")}, 422, "empty.png: empty file"),
    ({"photo": ("big.png", b"\0" * (1024 * 1024 + 1), "image/png")}, 413, "big.png: larger than 1 MB, the limit of "
                                                                            "this page"),
    ({"photo": ("huge.png", b"\0" * 1_200_000, "image/png")}, 413, "the photo is larger than 1 MB, the limit of "
                                                                    "this page"),
    ({"other": ("a.png", b"x", "image/png")}, 400, "no photo in the request (a form with the file in the field "
                                                   "'photo')"),
    ([("photo", ("a.png", b"x", "image/png")), ("photo", ("b.png", b"y", "image/png"))], 400,
     "not a photo upload (Too many files. Maximum number of files is 1.)"),
])
def test_what_cannot_be_read_answers_one_line(client, files, status, message):
    answer = client.post("/api/read", files=files)
    assert (answer.status_code, answer.json()) == (status, {"error": message})


def test_other_methods_and_paths_answer_one_line(client):
    assert client.get("/api/read").json() == {"error": "Method Not Allowed"}
    assert client.get("/nothing").json() == {"error": "Not Found"}


# ----------------------------------------------------------------------------- the page in a browser

def _browser_missing() -> list[str]:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    missing += [name for name in ("selenium", "starlette", "uvicorn", "python_multipart")
                if importlib.util.find_spec(name) is None]
    return missing


def _chromium(profile: Path, log: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,800",
                 "--force-device-scale-factor=1"):
        options.add_argument(flag)
    # The driver named: Selenium Manager (which would look on the network) is never run.
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver"), log_output=str(log)),
                            options=options)


def _wait_for_url(server, log: Path, timeout: float = 300.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"http://127\.0\.0\.1:\d+/", log.read_text())
        if found:
            return found.group(0)
        assert server.poll() is None, f"the page's server ended: {log.read_text()[-2000:]}"
        time.sleep(0.2)
    raise AssertionError(f"the page's server printed no address in {timeout:.0f} s: {log.read_text()[-2000:]}")


def _answer(driver, act, timeout: float = 180.0) -> str:
    """Does `act` on the page and waits for the page's answer: its state, "done" or "error"."""
    from selenium.webdriver.support.ui import WebDriverWait
    driver.execute_script("document.body.dataset.state = 'idle'")
    act()
    state = "const s = document.body.dataset.state; return s === 'done' || s === 'error' ? s : null"
    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(state))


def _save_small_png(png: bytes, path: Path) -> None:
    """The screenshot as a 256-colour PNG (a few tens of KB: small enough to commit)."""
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(path, optimize=True)


def _tall_photo(path: Path) -> None:
    """The sample photo in the middle of a wall twice as high as wide (500 x 1000 pixels)."""
    from PIL import Image
    wall = Image.new("RGB", (500, 1000), (150, 150, 140))
    photo = Image.open(SAMPLE).convert("RGB")
    photo = photo.resize((photo.width * 2, photo.height * 2))
    wall.paste(photo, ((500 - photo.width) // 2, (1000 - photo.height) // 2))
    wall.save(path)


def _unsure_photo(path: Path) -> None:
    """A third of a sample's size: read, but less sure than predict's default --min_confidence."""
    from PIL import Image
    photo = Image.open(REPO / "samples" / "svhn_train_3.png")
    photo.resize((photo.width // 3, photo.height // 3)).save(path)


def _assert_in_view(driver) -> None:
    """The answer (the reading, its confidence, the whole picture) lies inside the window without scrolling
    (a 1280 x 800 window: its page is about 1280 x 657)."""
    assert driver.execute_script("return window.scrollY") == 0
    height = driver.execute_script("return window.innerHeight")
    for element in ("reading", "confidence", "next-readings", "picture"):
        bottom = driver.execute_script(f"return document.getElementById('{element}').getBoundingClientRect().bottom")
        assert 0 < bottom <= height, (element, bottom, height)


@pytest.mark.slow
def test_the_page_in_a_real_browser_reads_what_predict_reads(tmp_path, monkeypatch):
    missing = _browser_missing()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install chromium chromium-driver; "
                    "pip install -e '.[test,demo]')")
    from selenium.webdriver.common.by import By
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # selenium talks to chromedriver directly
    predicted = run_module("svhn_jax.predict", "--json", str(SAMPLE))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    expected = json.loads(predicted.stdout.splitlines()[-1])["number"]
    assert expected is not None

    log = tmp_path / "server.log"
    server = start_module("svhn_jax.demo", "--port=0", output=log)
    try:
        url = _wait_for_url(server, log)
        driver = _chromium(tmp_path / "profile", tmp_path / "chromedriver.log")
        try:
            driver.get(url)
            assert "svhn_jax" in driver.title
            photo_input = driver.find_element(By.ID, "file")

            assert _answer(driver, lambda: photo_input.send_keys(str(SAMPLE))) == "done", \
                driver.find_element(By.ID, "error").text
            assert driver.find_element(By.ID, "reading").text == expected
            assert driver.find_element(By.ID, "file-name").text == SAMPLE.name
            assert re.fullmatch(r"0\.\d{3}", driver.find_element(By.ID, "confidence").text)
            assert driver.execute_script("return document.getElementById('picture').naturalWidth") >= 480
            _assert_in_view(driver)
            assert not driver.find_element(By.ID, "error").is_displayed()
            screenshot = driver.get_screenshot_as_png()
            (tmp_path / "demo.png").write_bytes(screenshot)
            if os.environ.get("SVHN_JAX_DEMO_SCREENSHOT"):
                _save_small_png(screenshot, Path(os.environ["SVHN_JAX_DEMO_SCREENSHOT"]))

            tall = tmp_path / "tall.png"  # a portrait photo: its picture is drawn 1024 px high
            _tall_photo(tall)
            assert _answer(driver, lambda: photo_input.send_keys(str(tall))) == "done"
            _assert_in_view(driver)
            driver.save_screenshot(str(tmp_path / "demo_tall.png"))

            unsure = tmp_path / "unsure.png"  # read, but less sure than predict's --min_confidence: no number
            _unsure_photo(unsure)
            unsure_answer = json.loads(run_module("svhn_jax.predict", "--json", str(unsure)).stdout.splitlines()[-1])
            assert unsure_answer["number"] is None and unsure_answer["reading"], unsure_answer
            assert _answer(driver, lambda: photo_input.send_keys(str(unsure))) == "done"
            assert driver.find_element(By.ID, "reading").text == "unsure"
            assert driver.find_element(By.ID, "reason").text == (
                f"best guess {unsure_answer['reading']} at {unsure_answer['confidence']:.3f} "
                f"({unsure_answer['reason']})")
            _assert_in_view(driver)

            notes = tmp_path / "notes.txt"
            notes.write_text("not a photo\n")
            assert _answer(driver, lambda: photo_input.send_keys(str(notes))) == "error"
            assert driver.find_element(By.ID, "error").text == NOT_AN_IMAGE_LINE
            assert not driver.find_element(By.ID, "result").is_displayed()
            driver.save_screenshot(str(tmp_path / "demo_error.png"))

            pick = driver.find_element(By.CSS_SELECTOR, f'#samples button[data-sample="{SAMPLE.name}"]')
            assert _answer(driver, pick.click) == "done"
            assert driver.find_element(By.ID, "reading").text == expected

            drop = ("fetch('samples/svhn_train_4.png').then(r => r.blob()).then(blob => {"
                    " const data = new DataTransfer(); data.items.add(new File([blob], 'dropped.png'));"
                    " document.getElementById('drop').dispatchEvent("
                    "  new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true})); })")
            assert _answer(driver, lambda: driver.execute_script(drop)) == "done"
            assert driver.find_element(By.ID, "file-name").text == "dropped.png"
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=60)
    output = log.read_text()
    assert server.returncode == 0 and output.rstrip().endswith("svhn_jax photo page: stopped"), output[-2000:]
    assert "Traceback" not in output


# ----------------------------------------------------------------------------- a real server, raw requests

SECRET = "not for the page\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`python -m svhn_jax.demo --port=0` on a samples folder holding one photo, a link to a file
    outside it, a link to a folder, a FIFO and a photo that is removed (or swapped) after the start:
    (base URL, port, samples folder, server log)."""
    if not HAS_STARLETTE or importlib.util.find_spec("uvicorn") is None:
        pytest.skip("needs starlette, uvicorn and python-multipart (pip install -e '.[demo]')")
    root = tmp_path_factory.mktemp("demo_server")
    secret = root / "secret.png"
    secret.write_text(SECRET)
    samples = root / "samples"
    samples.mkdir()
    shutil.copy(SAMPLE, samples / "a.png")
    shutil.copy(SAMPLE, samples / "removed.png")
    shutil.copy(SAMPLE, samples / "swapped.png")
    (samples / "inside_link.png").symlink_to("a.png")
    (samples / "outside.png").symlink_to(secret)
    (samples / "passwd.png").symlink_to("/etc/passwd")
    (samples / "folder.png").symlink_to(root)
    os.mkfifo(samples / "fifo.png")
    log = root / "server.log"
    server = start_module("svhn_jax.demo", "--port=0", f"--samples={samples}", "--max_upload_mb=1",
                          "--read_timeout=3", "--max_uploads=1", output=log)
    try:
        url = _wait_for_url(server, log)
        yield url, int(url.rstrip("/").rsplit(":", 1)[1]), samples, log
    finally:
        server.terminate()
        server.wait(timeout=60)
    output = log.read_text()
    assert server.returncode == 0 and "Traceback" not in output, output[-3000:]


def _request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None,
             host: str | None = None) -> tuple[int, bytes]:
    """One raw HTTP request to 127.0.0.1:`port` with exactly these headers (Host: `host`, default ours)."""
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        if body or method == "POST":
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


BOUNDARY = "svhnjaxtestboundary"


def _form(name: str, data: bytes) -> tuple[bytes, dict]:
    """A multipart form with the photo `data` in the field "photo": (body, its Content-Type header)."""
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def _post_photo(port: int, name: str, data: bytes, headers: dict | None = None, host: str | None = None):
    body, form_headers = _form(name, data)
    status, answer = _request(port, "POST", "/api/read", body, {**form_headers, **(headers or {})}, host)
    return status, json.loads(answer)


def test_the_server_lists_and_serves_only_regular_files_inside_its_samples_folder(served):
    _, port, samples, _ = served
    status, body = _request(port, "GET", "/api/info")
    assert status == 200
    assert json.loads(body)["samples"] == ["a.png", "inside_link.png", "removed.png", "swapped.png"]
    assert _request(port, "GET", "/samples/a.png") == (200, SAMPLE.read_bytes())
    assert _request(port, "GET", "/samples/inside_link.png") == (200, SAMPLE.read_bytes())
    for name in ("outside.png", "passwd.png", "folder.png", "fifo.png", "..%2Fsecret.png", "%2Fetc%2Fpasswd"):
        status, body = _request(port, "GET", f"/samples/{name}")
        assert status == 404 and json.loads(body)["error"] in ("no such sample photo", "Not Found"), name
        assert SECRET.encode() not in body and b"root:" not in body
    # A listed photo swapped for a link out of the folder after the start is not served either.
    (samples / "swapped.png").unlink()
    (samples / "swapped.png").symlink_to("/etc/passwd")
    status, body = _request(port, "GET", "/samples/swapped.png")
    assert status == 404 and b"root:" not in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LocalHost:{port}"])
def test_the_server_answers_its_own_host_names(served, host):
    _, port, _, _ = served
    assert _request(port, "GET", "/api/info", host=host.format(port=port))[0] == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "localhost",
                                  "127.0.0.1.evil.example:{port}", "", "10.0.0.1:{port}"])
def test_the_server_refuses_a_foreign_host_name_dns_rebinding(served, host):
    _, port, _, _ = served
    for method, path in (("GET", "/"), ("GET", "/api/info"), ("GET", "/samples/a.png"), ("POST", "/api/read")):
        status, body = _request(port, method, path, host=host.format(port=port))
        assert status == 403, (method, path, status)
        assert json.loads(body) == {"error": "refused: this page answers only http://127.0.0.1:PORT/ or "
                                             "http://localhost:PORT/ on its own port"}


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "http://{host}", "Sec-Fetch-Site": "cross-site"}])
def test_a_cross_site_post_is_refused(served, headers):
    _, port, _, _ = served
    headers = {k: v.format(host=f"127.0.0.1:{port}") for k, v in headers.items()}
    status, answer = _post_photo(port, "a.png", SAMPLE.read_bytes(), headers)
    assert (status, answer) == (403, {"error": "refused: a photo may be sent only from this page itself"})


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
                                     {"Origin": "http://localhost:{port}"}, {"Sec-Fetch-Site": "none"}])
def test_a_same_origin_post_is_read(served, headers):
    _, port, _, _ = served
    host = "localhost:{port}" if "localhost" in headers.get("Origin", "") else None
    headers = {k: v.format(port=port) for k, v in headers.items()}
    status, answer = _post_photo(port, "a.png", SAMPLE.read_bytes(), headers,
                                 host=host.format(port=port) if host else None)
    assert status == 200 and answer["number"] == "23", answer


def test_a_sample_removed_after_the_start_answers_one_line(served):
    _, port, samples, log = served
    (samples / "removed.png").unlink()
    status, body = _request(port, "GET", "/samples/removed.png")
    assert (status, json.loads(body)) == (404, {"error": "no such sample photo"})
    assert "Traceback" not in log.read_text()


# ----------------------------------------------------------------------------- a real server under strain

def _open_upload(port: int, sent: bytes = b"", length: int = 100_000) -> socket.socket:
    """A connection that has sent an upload's headers (Content-Length `length`), its form's headers and `sent`
    of the photo's bytes."""
    body, headers = _form("slow.png", b"")
    form_head = body[:body.index(b"\r\n\r\n") + 4]
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    connection.sendall(f"POST /api/read HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
                       f"{headers['Content-Type']}\r\nContent-Length: {length}\r\n\r\n".encode() + form_head + sent)
    return connection


def _response(connection: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of the response that arrives on `connection` (read to its end)."""
    data = b""
    while chunk := connection.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


def _until_free(port: int, timeout: float = 20.0) -> None:
    """Waits until the server takes an upload again (a closed upload's slot is freed as its end arrives)."""
    deadline = time.monotonic() + timeout
    while _post_photo(port, "a.png", SAMPLE.read_bytes())[0] == 503:
        assert time.monotonic() < deadline, "the server stayed busy"
        time.sleep(0.2)


def test_a_client_that_disconnects_mid_upload_leaves_no_traceback(served):
    _, port, _, log = served
    before = _log_lines(log)
    for _ in range(3):
        connection = _open_upload(port, b"x" * 5000)
        time.sleep(0.3)
        connection.close()
    _until_free(port)
    added = _log_lines(log)[len(before):]
    assert added == [], added  # not a line, let alone a traceback


def test_a_slow_upload_times_out_in_one_line(served):
    _, port, _, log = served
    connection = _open_upload(port, b"x" * 100)
    start = time.monotonic()
    status, answer = _response(connection)
    connection.close()
    assert (status, answer) == (408, {"error": "the photo did not arrive within 3 s (--read_timeout)"})
    assert 2.5 < time.monotonic() - start < 15
    _until_free(port)


def test_more_uploads_than_max_uploads_answer_busy(served):
    _, port, _, log = served
    slow = _open_upload(port, b"x" * 100)
    time.sleep(0.3)
    try:
        status, answer = _post_photo(port, "a.png", SAMPLE.read_bytes())
        assert (status, answer) == (503, {"error": "busy: 1 photo is being received or read (--max_uploads); "
                                                   "try again in a moment"})
    finally:
        slow.close()
    _until_free(port)
    assert _post_photo(port, "a.png", SAMPLE.read_bytes())[1]["number"] == "23"


def test_the_page_answers_with_predicts_min_confidence(served, tmp_path):
    _, port, _, _ = served
    unsure = tmp_path / "unsure.png"
    _unsure_photo(unsure)
    predicted = run_module("svhn_jax.predict", "--json", str(unsure))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    expected = json.loads(predicted.stdout.splitlines()[-1])
    status, answer = _post_photo(port, "unsure.png", unsure.read_bytes())
    assert status == 200, answer
    assert {k: answer[k] for k in expected if k != "file"} == {k: v for k, v in expected.items() if k != "file"}
    from svhn_jax.infer.whole_photo import DEFAULT_MIN_CONFIDENCE  # predict's default, and the page's
    assert answer["number"] is None and answer["reading"] and answer["confidence"] < DEFAULT_MIN_CONFIDENCE, answer


@pytest.mark.parametrize("size", [(1, 1), (2000, 1), (2, 40)])
def test_a_photo_under_3_pixels_on_a_side_answers_one_line(served, size):
    from PIL import Image
    _, port, _, log = served
    png = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(png, format="PNG")
    status, answer = _post_photo(port, "tiny.png", png.getvalue())
    assert status == 422 and answer["error"].startswith("tiny.png: ") and "\n" not in answer["error"], answer
    assert "Traceback" not in log.read_text()


def test_the_min_confidence_flag_is_checked():
    result = run_module("svhn_jax.demo", "--min_confidence=1.5", "--port=0", timeout=120)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: --min_confidence=1.5: must lie in 0-1"], result.stderr[-2000:]


@pytest.mark.parametrize("flag", ["--localiser", "--workdir"])
def test_a_run_that_cannot_load_is_named_in_one_line(tmp_path, flag):
    if importlib.util.find_spec("uvicorn") is None or not HAS_STARLETTE:
        pytest.skip("needs starlette, uvicorn and python-multipart (pip install -e '.[demo]')")
    (tmp_path / "config.json").write_text("{")  # a run's broken config
    result = run_module("svhn_jax.demo", f"{flag}={tmp_path}", "--port=0", "--samples=", timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{flag}={tmp_path}: cannot load a trained run (") and "shipped" not in line, line


_LIMITED = """
import resource, runpy, sys
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv[0] = "svhn_jax.demo"
runpy.run_module("svhn_jax.demo", run_name="__main__", alter_sys=True)
"""


def _start_limited(log: Path, max_file_bytes: int, *args: str) -> tuple[subprocess.Popen, int]:
    """The page's server whose files may not grow past `max_file_bytes` (RLIMIT_FSIZE: a full disk,
    its temporary folder's included), no compilation cache: (process, port)."""
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-c", _LIMITED, str(max_file_bytes), "--port=0", "--samples=",
                                   "--cache_dir=none", *args], cwd=REPO, env=module_env(), stdout=out,
                                  stderr=subprocess.STDOUT)
    url = _wait_for_url(server, log)
    return server, int(url.rstrip("/").rsplit(":", 1)[1])


def test_a_full_temporary_folder_answers_one_line(tmp_path):
    if not HAS_STARLETTE or importlib.util.find_spec("uvicorn") is None:
        pytest.skip("needs starlette, uvicorn and python-multipart (pip install -e '.[demo]')")
    from PIL import Image
    log = tmp_path / "server.log"
    server, port = _start_limited(log, 400_000, "--max_upload_mb=3")
    try:
        noise = io.BytesIO()  # a 700 KB photo: received in memory, then cannot be stored for decoding
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 480, 3), dtype=np.uint8)).save(noise, "PNG")
        assert len(noise.getvalue()) > 600_000
        full = "cannot store the photo: the server's temporary folder is full or unwritable"
        status, answer = _post_photo(port, "noise.png", noise.getvalue())
        assert status == 507 and answer["error"].startswith(f"noise.png: {full}"), answer
        status, answer = _post_photo(port, "noise.png", noise.getvalue() * 3)  # 2.1 MB: a temporary file
        assert status == 507 and answer["error"].startswith(full), answer
        assert _post_photo(port, "a.png", SAMPLE.read_bytes())[1]["number"] == "23"
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert "Traceback" not in log.read_text() and server.returncode == 0, log.read_text()[-3000:]


def test_a_ctrl_c_answers_the_uploads_in_flight_then_stops_in_one_line(tmp_path):
    if not HAS_STARLETTE or importlib.util.find_spec("uvicorn") is None:
        pytest.skip("needs starlette, uvicorn and python-multipart (pip install -e '.[demo]')")
    log = tmp_path / "server.log"
    server, port = _start_limited(log, 1 << 30, "--read_timeout=3")
    connection = _open_upload(port, b"x" * 100)
    time.sleep(0.5)
    try:
        server.send_signal(signal.SIGINT)
        assert _response(connection) == (408, {"error": "the photo did not arrive within 3 s (--read_timeout)"})
        server.wait(timeout=60)
    finally:
        connection.close()
        if server.poll() is None:
            server.kill()
    lines = _log_lines(log)
    assert lines[1:] == ["svhn_jax photo page: stopped"] and server.returncode == 0, lines


def test_a_double_ctrl_c_with_uploads_in_flight_stops_at_once_in_one_line(tmp_path):
    if not HAS_STARLETTE or importlib.util.find_spec("uvicorn") is None:
        pytest.skip("needs starlette, uvicorn and python-multipart (pip install -e '.[demo]')")
    log = tmp_path / "server.log"
    server, port = _start_limited(log, 1 << 30)  # uploads may take 60 s to arrive: the first Ctrl-C waits
    connections = [_open_upload(port, b"x" * 100) for _ in range(2)]
    time.sleep(0.5)
    try:
        server.send_signal(signal.SIGINT)
        time.sleep(0.3)
        start = time.monotonic()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
        assert time.monotonic() - start < 20
    finally:
        for c in connections:
            c.close()
        if server.poll() is None:
            server.kill()
    lines = _log_lines(log)
    assert lines[1:] == ["svhn_jax photo page: stopped at once (a second Ctrl-C): the uploads in flight were not "
                         "answered"] and server.returncode == 130, lines


# ----------------------------------------------------------------------------- the checkout stays clean

def test_the_drawings_folder_the_readme_names_is_ignored_by_git():
    """The README's ``predict --annotate=drawn`` (as the photo page draws, predict writes each photo with its
    answer drawn) leaves nothing for ``git status`` to show in a checkout."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    folders = {f for f in re.findall(r"--annotate=([\w./-]+)", (REPO / "README.md").read_text())
               if not f.startswith(("/", "DIR"))}
    assert "drawn" in folders, folders
    for folder in sorted(folders):
        ignored = subprocess.run(["git", "check-ignore", "-q", f"{folder}/svhn_train_2.annotated.png"], cwd=REPO)
        assert ignored.returncode == 0, f"{folder}/ is not in .gitignore"
