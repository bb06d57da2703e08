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
import time
from pathlib import Path

import pytest
from conftest import REPO, run_module, start_module

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

    from svhn_jax.infer import whole_photo
    answer = client.post("/api/read", files={"photo": ("svhn_train_2.png", SAMPLE.read_bytes(), "image/png")})
    assert answer.status_code == 200, answer.text
    a = answer.json()
    result, _, _ = whole_photo.read_file(client.pipeline.reader, client.pipeline.localiser, str(SAMPLE))
    expected = whole_photo.answer("svhn_train_2.png", result, 0.0)  # what predict --json prints
    assert {k: a[k] for k in expected} == expected and a["number"] == "23"
    assert 0.0 <= a["no_number"] < 0.5 and 0.0 < a["box_confidence"] <= 1.0 and a["seconds"] > 0
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
                 "--no-first-run", f"--user-data-dir={profile}", "--window-size=1100,760",
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
            assert not driver.find_element(By.ID, "error").is_displayed()
            screenshot = driver.get_screenshot_as_png()
            (tmp_path / "demo.png").write_bytes(screenshot)
            if os.environ.get("SVHN_JAX_DEMO_SCREENSHOT"):
                _save_small_png(screenshot, Path(os.environ["SVHN_JAX_DEMO_SCREENSHOT"]))

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
                          output=log)
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
