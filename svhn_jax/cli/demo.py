"""The photo page: choose, drop or pick a photo in a browser and see the house number read in it.

  pip install -e '.[demo]'
  python -m svhn_jax.demo [--port=7860] [--workdir=W] [--localiser=L|none] [--samples=DIR] [--max_upload_mb=20]
                          [--min_confidence=C] [--read_timeout=60] [--max_uploads=4]

Serves one page on http://127.0.0.1:PORT (this machine only; ``--port=0`` takes any free port and
prints it). The page (`demo.html`, no resources from the network) uploads the photo to
``POST /api/read`` and shows the answer `predict --json` gives for it (the same models, the same
whole-photo pipeline: the localiser finds the number, the reader reads it with 27 views): the photo
with the box and reading drawn (`infer.drawing.draw_answer`, as ``predict --annotate``), the
reading, its confidence and the next most confident readings (`whole_photo.next_readings`), the box,
the localiser's confidence in it and its probability that the photo holds no number; "no number
found" with the reason when there is none, "unsure" with the best guess when the reading is less
confident than ``--min_confidence`` (predict's flag, with predict's default: the page never shows a
number predict would not answer).

The models are loaded (and their programs compiled) once, before the page is served; photos are
read one at a time (a lock: the models use every core anyway). An upload over ``--max_upload_mb``
is refused by the page before it is sent, and by the server; a file that is not a photo, or that
cannot be decoded, answers one line (``notes.txt: not a readable image (unknown format)``) shown
on the page, never a traceback. ``GET /api/info`` lists the sample photos the page offers
(``--samples``: the repo's ``samples/`` when it is there), served from ``GET /samples/NAME``: only
regular files inside that folder (a link out of it, to /etc/shadow say, is not served).

Under strain the page answers JSON errors and logs no traceback: an upload not received within
``--read_timeout`` seconds answers 408, one beyond ``--max_uploads`` received or read at once 503,
one that cannot be stored because the temporary folder is full 507; a client that goes away
mid-upload leaves no line in the log. Ctrl-C answers the uploads in flight, then stops ("stopped",
exit status 0); a second Ctrl-C stops at once, in one line, exit status 130.

The page answers only requests for ``127.0.0.1``, ``localhost`` or ``[::1]`` on its own port (the
Host header), so a web site whose name was rebound to 127.0.0.1 (DNS rebinding) gets 403, and reads
only photos posted from the page itself (an Origin or Sec-Fetch-Site of another site: 403).

Starlette, uvicorn and python-multipart (the ``[demo]`` extra) are imported only here and only
when the page starts: the package itself never needs them; without them the command says so in
one line.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import io
import mimetypes
import os
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from absl import flags, logging
from PIL import Image

from svhn_jax.core.cli import cli, quiet_libraries, run_program
from svhn_jax.core.errors import UserError, one_line
from svhn_jax.infer import whole_photo
from svhn_jax.infer.backends import load_models
from svhn_jax.infer.drawing import draw_answer
from svhn_jax.infer.photos import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageError

HOST = "127.0.0.1"  # never another interface: the page has no authentication
MB = 1024 * 1024
MAX_UPLOAD_MB = 20
FORM_OVERHEAD = 64 * 1024    # bytes of multipart framing allowed on top of the photo
PICTURE_SIDES = (480, 1024)  # the drawn picture's longer side: small photos enlarged, big ones shrunk
PAGE = Path(__file__).with_name("demo.html")
REPO_SAMPLES = Path(__file__).resolve().parents[2] / "samples"  # present in a checkout, not in a wheel
_MAX_REASON = 300
READ_TIMEOUT = 60.0   # seconds an upload may take to arrive
MAX_UPLOADS = 4       # uploads received or read at once; more answer 503 (busy)
MAX_SAMPLE = 64 * MB  # a sample photo larger than this is not served
# module -> the distribution that provides it (the [demo] extra)
DEMO_PACKAGES = {"starlette": "starlette", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}


def missing_packages() -> list[str]:
    """The [demo] extra's distributions that are not installed."""
    return [dist for module, dist in DEMO_PACKAGES.items() if importlib.util.find_spec(module) is None]


class StorageError(Exception):
    """The photo could not be stored in the temporary folder (a full disk); ``str(e)`` is one line."""


def storage_error(e: OSError) -> StorageError:
    """`e` (a failed write into the temporary folder) as the line the page answers."""
    return StorageError(f"cannot store the photo: the server's temporary folder is full or unwritable "
                        f"({tempfile.gettempdir()}: {(e.strerror or str(e)).lower()})")


@contextlib.contextmanager
def stored(data: bytes) -> Iterator[Path]:
    """`data` in a file of its own in a temporary folder, removed after the block; `StorageError` when it
    cannot be written (a full disk)."""
    try:
        folder = tempfile.TemporaryDirectory(prefix="svhn_jax_demo_", ignore_cleanup_errors=True)
    except OSError as e:
        raise storage_error(e) from None
    with folder:
        path = Path(folder.name) / "photo"  # decoded by content, as predict decodes a file
        try:
            path.write_bytes(data)
        except OSError as e:
            raise storage_error(e) from None
        yield path


class Pipeline:
    """The models, loaded once, and the lock that lets one photo be read at a time; the answers are
    predict's at `min_confidence` (its default too)."""

    def __init__(self, reader: Any, localiser: Any, max_pixels: int = DEFAULT_MAX_PIXELS,
                 min_confidence: float = whole_photo.DEFAULT_MIN_CONFIDENCE):
        self.reader, self.localiser, self.max_pixels = reader, localiser, max_pixels
        self.min_confidence = min_confidence
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Compiles the reader's and the localiser's programs, so the first photo is answered as fast as the others."""
        blank = np.full((64, 96, 3), 128, np.uint8)
        with self._lock:
            whole_photo.read_photo(self.reader, None, blank, (24, 16, 48, 32))
            if self.localiser is not None:
                self.localiser.locate([blank], k=1)

    def read(self, data: bytes, name: str) -> dict[str, Any]:
        """The answer for a photo's bytes: `predict --json`'s answer (`whole_photo.answer`, "file" = `name`)
        plus "no_number" (the localiser's probability of none, or None), "next_readings" ([reading,
        confidence] of the next most confident readings), "picture" (the photo with the
        answer drawn, a PNG data URL) and "seconds". Raises `ImageError` for a file it cannot decode,
        `StorageError` when it cannot store it for decoding."""
        start = time.perf_counter()
        with self._lock, stored(data) as path:
            result, image, scale = whole_photo.read_file(self.reader, self.localiser, str(path),
                                                         max_pixels=self.max_pixels)
        a = whole_photo.answer(name, result, self.min_confidence)
        enlarge = PICTURE_SIDES[0] / max(image.shape[:2])
        if enlarge > 1.0:  # a small photo drawn larger, so the box and the label stay legible
            size = (round(image.shape[1] * enlarge), round(image.shape[0] * enlarge))
            image, scale = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)), scale / enlarge
        picture = draw_answer(image, a, scale, max_side=PICTURE_SIDES[1])
        png = io.BytesIO()
        picture.save(png, format="PNG")
        return {**a, "no_number": result.get("no_number"), "next_readings": result.get("next_readings", []),
                "picture": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii"),
                "seconds": round(time.perf_counter() - start, 3)}


def _inside(path: Path, folder: Path) -> Path | None:
    """`path` resolved (every link followed) when that is a regular file inside `folder` (itself
    resolved), else None: a link out of the folder, to a folder or to a FIFO is not a sample."""
    real = Path(os.path.realpath(path))
    try:
        return real if real.is_relative_to(folder) and stat.S_ISREG(real.stat().st_mode) else None
    except OSError:
        return None


def sample_photos(folder: str | Path | None) -> dict[str, Path]:
    """name -> resolved path of the photos in `folder` (none when it is None or not a folder): regular
    files inside the folder, links to other files of the folder included, hidden files left out."""
    if not folder or not Path(folder).is_dir():
        return {}
    root = Path(os.path.realpath(folder))
    found = {p.name: _inside(p, root) for p in sorted(Path(folder).iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")}
    return {name: path for name, path in found.items() if path is not None}


def read_sample(name: str, folder: str | Path, listed: dict[str, Path]) -> bytes | None:
    """The bytes of the listed sample `name`, checked again as they are read (a photo removed, or swapped
    for a link out of the folder or a FIFO, since the start is none: None), at most `MAX_SAMPLE` bytes."""
    if name not in listed:
        return None
    path = _inside(Path(folder) / name, Path(os.path.realpath(folder)))
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        data = f.read(MAX_SAMPLE + 1)
    return data if len(data) <= MAX_SAMPLE else None


# The names the page answers to; any other Host (a DNS-rebinding site's name) is refused.
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
FOREIGN_HOST = "refused: this page answers only http://127.0.0.1:PORT/ or http://localhost:PORT/ on its own port"
CROSS_SITE = "refused: a photo may be sent only from this page itself"


def local_host(host: str, port: int) -> bool:
    """Whether the Host header `host` names this machine on the serving `port` (no port: port 80)."""
    host = host.strip().lower()
    return host in {f"{name}:{port}" for name in LOCAL_NAMES} or (port == 80 and host in LOCAL_NAMES)


def same_origin(headers: dict[str, str], host: str) -> bool:
    """Whether a request with these (lower-case) headers comes from the page itself: an Origin, when
    sent, is ``http://`` + its Host; a Sec-Fetch-Site, when sent, is "same-origin" or "none" (typed
    by the user). A client that sends neither (curl, a script) is no browser a site could drive."""
    origin, site = headers.get("origin"), headers.get("sec-fetch-site")
    if origin is not None and origin.strip().lower() != f"http://{host.strip().lower()}":
        return False
    return site is None or site.strip().lower() in ("same-origin", "none")


def refusal(scope: dict[str, Any]) -> str | None:
    """Why an HTTP request (its ASGI `scope`) is refused, or None: a Host that is not this machine on the
    serving port (DNS rebinding), or a POST from another site."""
    headers: dict[str, str] = {}
    hosts = 0
    for key, value in scope.get("headers", []):
        key = key.decode("latin-1").lower()
        hosts += key == "host"
        headers[key] = value.decode("latin-1")
    server = scope.get("server") or (None, None)
    if hosts != 1 or server[1] is None or not local_host(headers["host"], int(server[1])):
        return FOREIGN_HOST
    if scope.get("method") not in ("GET", "HEAD", "OPTIONS") and not same_origin(headers, headers["host"]):
        return CROSS_SITE
    return None


def guarded(app: Callable) -> Callable:
    """The ASGI `app` behind `refusal` (a refused request answers 403 ``{"error": one line}`` unread), and
    never a traceback in the log: a request cut short by the page stopping (a second Ctrl-C cancels
    it) answers 503 when it can; any other surprise is one log line and a 500 answer."""
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse

    async def guard(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        problem = refusal(scope)
        if problem is not None:
            return await JSONResponse({"error": problem}, status_code=403)(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracked)
            return
        except (asyncio.CancelledError, ClientDisconnect):  # the page stopping, or the client gone
            status, message = 503, "the page is stopping"
        except Exception as e:
            status, message = 500, f"{scope.get('path', '')}: {type(e).__name__}: {one_line(e)[:_MAX_REASON]}"
            logging.error("the page failed on %s", message)
        if not started:
            with contextlib.suppress(Exception):  # the client may be gone too
                await JSONResponse({"error": message}, status_code=status)(scope, receive, send)

    return guard


def create_app(pipeline: Pipeline, samples: str | Path | None = REPO_SAMPLES, max_upload: int = MAX_UPLOAD_MB * MB,
               read_timeout: float = READ_TIMEOUT, max_uploads: int = MAX_UPLOADS):
    """The Starlette app: the page (``GET /``), ``GET /api/info`` (sample names, upload limit),
    ``GET /samples/NAME`` and ``POST /api/read`` (a multipart form with the photo in ``photo``) ->
    `Pipeline.read`'s answer, or ``{"error": one line}`` with status 400 (a broken or cut-off form),
    404, 405, 408 (not received within `read_timeout` seconds), 413, 422 (not a readable photo), 503
    (already `max_uploads` uploads being received or read), 507 (no room to store it) or 500; behind
    `guarded` (403 for a foreign Host or a cross-site POST)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    page_html = PAGE.read_text()
    photos = sample_photos(samples)
    too_large = f"larger than {max_upload / MB:g} MB, the limit of this page"
    in_flight = 0  # uploads being received or read (the event loop's thread alone counts them)
    busy = (f"busy: {max_uploads} photo{'s are' if max_uploads > 1 else ' is'} being received or read "
            "(--max_uploads); try again in a moment")

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": one_line(message)}, status_code=status)

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(page_html)

    async def info(request: Request) -> JSONResponse:
        return JSONResponse({"samples": list(photos), "max_upload_bytes": max_upload})

    async def sample(request: Request):
        name = request.path_params["name"]
        data = await run_in_threadpool(read_sample, name, samples, photos) if samples else None
        if data is None:
            return error(404, "no such sample photo")
        return Response(data, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream")

    class TooLarge(Exception):
        pass

    class TooSlow(Exception):
        pass

    class NoPhoto(Exception):
        pass

    async def receive_upload(request: Request) -> tuple[str, bytes]:
        """(file name, bytes) of the form's photo, its body stopped past the size limit (a chunked one has no
        length) or past the deadline; `NoPhoto` for a form without one."""
        received, deadline = 0, time.monotonic() + read_timeout

        async def receive():
            nonlocal received
            try:
                message = await asyncio.wait_for(request.receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                raise TooSlow from None
            received += len(message.get("body", b""))
            if received > max_upload + FORM_OVERHEAD:
                raise TooLarge
            return message

        async with Request(request.scope, receive).form(max_files=1, max_fields=1) as form:
            upload = form.get("photo")
            if not isinstance(upload, UploadFile):
                raise NoPhoto
            name = Path((upload.filename or "photo").replace("\\", "/")).name or "photo"
            return name, await upload.read(max_upload + 1)

    async def read(request: Request) -> JSONResponse:
        nonlocal in_flight
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_upload + FORM_OVERHEAD:
            return error(413, f"the photo is {too_large}")
        if in_flight >= max_uploads:
            return error(503, busy)
        in_flight += 1
        try:
            return await read_upload(request)
        finally:
            in_flight -= 1

    async def read_upload(request: Request) -> JSONResponse:
        try:
            name, data = await receive_upload(request)
        except TooLarge:
            return error(413, f"the photo is {too_large}")
        except TooSlow:
            return error(408, f"the photo did not arrive within {read_timeout:g} s (--read_timeout)")
        except ClientDisconnect:  # nobody is left to read the answer
            return error(400, "the upload was cut off")
        except NoPhoto:
            return error(400, "no photo in the request (a form with the file in the field 'photo')")
        except HTTPException as e:  # Starlette's for a broken form, or more than one file
            return error(e.status_code, f"not a photo upload ({e.detail})")
        except OSError as e:  # the form's temporary file (an upload over 1 MB) on a full disk
            return error(507, f"{storage_error(e)}")
        if len(data) > max_upload:
            return error(413, f"{name}: {too_large}")
        try:
            return JSONResponse(await run_in_threadpool(pipeline.read, data, name))
        except ImageError as e:
            return error(422, f"{name}: {e}")
        except StorageError as e:
            return error(507, f"{name}: {e}")
        except Exception as e:  # a model's surprise: one line, and the page stays up
            reason = one_line(e)[:_MAX_REASON]
            logging.error("%s: cannot read (%s: %s)", name, type(e).__name__, reason)
            return error(500, f"{name}: cannot read ({type(e).__name__}: {reason})")

    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail))

    async def server_error(request: Request, e: Exception) -> JSONResponse:  # `guarded` logs it
        return error(500, f"{request.url.path}: {type(e).__name__}: {one_line(e)[:_MAX_REASON]}")

    return guarded(Starlette(routes=[Route("/", page), Route("/api/info", info), Route("/samples/{name}", sample),
                                     Route("/api/read", read, methods=["POST"])],
                             exception_handlers={HTTPException: http_error, Exception: server_error}))


# ----------------------------------------------------------------------------- CLI

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program (importing this module defines none)."""
    flags.DEFINE_integer("port", 7860, "The port on 127.0.0.1 to serve the page on (0: any free port).")
    flags.DEFINE_string("workdir", None, "A trained reader run's working directory; default: the shipped reader.")
    flags.DEFINE_string("localiser", "", "Where to look: '' -> the shipped localiser, a localiser run's "
                        "workdir, or 'none' (the whole photo is the crop).")
    flags.DEFINE_string("samples", str(REPO_SAMPLES), "A folder of photos the page offers to pick from "
                        "('' -> none).")
    flags.DEFINE_integer("max_upload_mb", MAX_UPLOAD_MB, "Refuse photos larger than this (MB).")
    flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS, "Refuse images with more pixels than this.")
    flags.DEFINE_string("cache_dir", "", "Persistent JAX compilation cache folder ('' -> "
                        "$SVHN_JAX_COMPILATION_CACHE or the user cache folder, 'none' -> off).")
    flags.DEFINE_float("min_confidence", whole_photo.DEFAULT_MIN_CONFIDENCE, "Answer 'no number' for a reading "
                       "less confident than this (0-1), as predict --min_confidence (the same default).")
    flags.DEFINE_float("read_timeout", READ_TIMEOUT, "Seconds an upload may take to arrive (then 408).")
    flags.DEFINE_integer("max_uploads", MAX_UPLOADS, "Uploads received or read at once; more are answered "
                         "503 (busy).")


def _listen(port: int) -> socket.socket:
    """A socket listening on HOST:`port`, opened before the models load, so a busy port fails at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
        sock.listen(64)  # browsers that come early wait for the page rather than being refused
    except OSError as e:
        sock.close()
        raise UserError(f"cannot serve on {HOST}:{port} ({(e.strerror or str(e)).lower()}); "
                        "--port=N picks another port, --port=0 any free one") from None
    return sock


def flag_problem() -> str | None:
    """What is wrong with the flags' values, in one line, or None."""
    if not 0 <= FLAGS.port <= 65535 or FLAGS.max_upload_mb <= 0:
        return "--port must lie in 0-65535 and --max_upload_mb be positive"
    if not 0.0 <= FLAGS.min_confidence <= 1.0:
        return f"--min_confidence={FLAGS.min_confidence:g}: must lie in 0-1"
    if not FLAGS.read_timeout > 0:
        return f"--read_timeout={FLAGS.read_timeout:g}: must be positive (seconds)"
    if FLAGS.max_uploads < 1:
        return f"--max_uploads={FLAGS.max_uploads}: must be at least 1"
    return None


class LoadError(Exception):
    """A reader or localiser that cannot be loaded; ``str(e)``: the line to print, naming which."""


def loaded_models() -> tuple[Any, Any]:
    """(reader, localiser or None) of the flags, loaded one after the other so that a failure names the one
    at fault (``--localiser=L: cannot load a trained run (...)``, not the reader); `LoadError` otherwise."""
    from svhn_jax.infer.localiser import Localiser

    def attempt(source: str, load: Callable[[], Any]) -> Any:
        try:
            return load()
        except Exception as e:  # one line, never a traceback (as predict)
            # orbax's abandoned reads of a checkpoint of another shape: "Exception ignored" tracebacks later
            sys.unraisablehook = lambda unraisable: None
            if isinstance(e, UserError):  # its own line already names the run
                raise LoadError(one_line(e)) from None
            raise LoadError(f"{source}: cannot load a trained run ({type(e).__name__}: "
                            f"{one_line(e)[:_MAX_REASON]})") from None

    reader, _ = attempt(f"--workdir={FLAGS.workdir}" if FLAGS.workdir else "the shipped reader",
                        lambda: load_models("jax", FLAGS.workdir, "none", cache_dir=FLAGS.cache_dir))
    if FLAGS.localiser == "none":
        return reader, None
    return reader, attempt(f"--localiser={FLAGS.localiser}" if FLAGS.localiser else "the shipped localiser",
                           lambda: Localiser.load(FLAGS.localiser or None))


@cli
def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"usage: python -m svhn_jax.demo [--port=7860] (no arguments; got {' '.join(argv[1:])!r})",
              file=sys.stderr)
        return 2
    missing = missing_packages()
    if missing:
        print(f"error: the photo page needs {', '.join(missing)}: pip install -e '.[demo]'", file=sys.stderr)
        return 2
    problem = flag_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    sock = _listen(FLAGS.port)
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.ERROR)
    quiet_libraries()
    try:
        models = loaded_models()
    except LoadError as e:
        print(e, file=sys.stderr)
        return 2
    reader, localiser = models
    pipeline = Pipeline(reader, localiser, FLAGS.max_pixels, FLAGS.min_confidence)
    pipeline.warm_up()

    import uvicorn
    page = create_app(pipeline, FLAGS.samples or None, FLAGS.max_upload_mb * MB, FLAGS.read_timeout,
                      FLAGS.max_uploads)
    server = uvicorn.Server(uvicorn.Config(page, log_level="warning", access_log=False, lifespan="off"))
    print(f"svhn_jax photo page: http://{HOST}:{sock.getsockname()[1]}/ (Ctrl-C stops it)", flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down, then passed the signal on
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopped: one more Ctrl-C adds no second line
    if server.force_exit:  # a second Ctrl-C while the uploads in flight were being finished
        print("svhn_jax photo page: stopped at once (a second Ctrl-C): the uploads in flight were not answered",
              file=sys.stderr)
        return 128 + signal.SIGINT
    print("svhn_jax photo page: stopped", file=sys.stderr)
    return 0


def run_as_program() -> None:
    """Runs the command (`python -m svhn_jax.demo`)."""
    define_flags()
    run_program(main)

