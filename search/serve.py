"""The Milky Way search as a local web page and JSON API (`evaluate.py serve`).

One process holds the run's model, the gallery's source and its saved index. A query is the rendered Milky Way,
an uploaded image or a gallery galaxy: the first two are prepared like the gallery and embedded, a gallery
galaxy's vector is read from the index, so the gallery itself is never embedded again. FastAPI serves one plain
page (serve.html, which reads the API with fetch) and the JSON API, so scripts get exactly what the page shows.
"""
from __future__ import annotations

import contextlib
import functools
import io
import math
import re
import socket
import statistics
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import faiss
import numpy as np
import uvicorn
from PIL import Image
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from core.errors import DataError, UsageError
from core.machine import device_name
from datasets.folder import decode_image
from datasets.pipeline import prepare_image
from datasets.source import Source
from search.embedding import GallerySpec, open_run
from search.gallery import Gallery
from search.index import ShardedIndex, open_gallery
from search.queries import MILKY_WAY, gallery_details, milky_way_image, neighbour_rows, search_query

PAGE = Path(__file__).with_name("serve.html")
DEFAULT_K = 10
MAX_K = 100                     # a grid of more cut-outs than this is no longer browsable
MAX_UPLOAD_BYTES = 20 * 2 ** 20
MAX_UPLOAD_PIXELS = 50_000_000  # a few KB of PNG can hold a 144-megapixel image: 2.5 s of decoding, the server blocked
THUMBNAIL_SIZE = 128            # px, the longer side of a served cut-out
THUMBNAILS_CACHED = 4096
API_ROUTES = ("Use GET /, GET /api/neighbours?index=I&k=K, POST /api/neighbours (an image), "
              "GET /api/galaxies/I.png or GET /api/milky-way.png")
QUERY_THREADS = 1               # FAISS threads for one query vector: on 2 busy cores, 100k vectors, 2.5 ms against 44


class InputError(DataError):
    """Bad input from the page or an API client, answered with HTTP `status` and the message as JSON."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def whole_number(text: str | int, name: str, low: int, high: int, what_to_do: str, status: int = 400) -> int:
    """`text` as an int in low..high, else an InputError saying so; only ASCII digits count (`str.isdigit` also
    accepts '²', which int() refuses)."""
    value = int(text) if re.fullmatch(r"-?[0-9]+", str(text).strip()) else None
    if value is None or not low <= value <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got '{text}'. {what_to_do}", status)
    return value


def png(image: np.ndarray, size: int = THUMBNAIL_SIZE) -> bytes:
    """A uint8 RGB or grayscale image as PNG bytes, shrunk so that its longer side is at most `size`."""
    scale = size / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    image = image if image.ndim == 2 or image.shape[-1] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".png", image)[1].tobytes()


def refuse_huge_images(data: bytes):
    """An InputError (413) when the image header alone says more than MAX_UPLOAD_PIXELS, before any decoding;
    a header PIL cannot read is left to the decoder to name."""
    too_many = f"more than the {MAX_UPLOAD_PIXELS // 1_000_000} megapixels accepted. Upload a cut-out of the galaxy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            raise InputError(f"the uploaded image is {too_many}", 413) from None
        except (OSError, ValueError):
            return
    if width * height > MAX_UPLOAD_PIXELS:
        raise InputError(f"the uploaded image is {width}×{height} px, {too_many}", 413)


def json_safe(row: dict) -> dict:
    """NaN or infinite metadata (a Galaxy10 galaxy without a redshift) as null: JSON has no NaN."""
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in row.items()}


@dataclass
class Search:
    """What every query needs, loaded once: the gallery's source and preparation, its index and the embedding."""

    spec: GallerySpec
    source: Source
    gallery: Gallery | ShardedIndex
    embed: Callable[[np.ndarray], np.ndarray]
    about: dict             # dataset, run, embedding: shown on the page

    def __post_init__(self):
        # the Milky Way observed like this gallery, embedded once; the model's first call also traces it here
        self.milky_way = self.embed(search_query(MILKY_WAY, self.spec, self.source)).mean(axis=0, keepdims=True)
        self.thumbnail = functools.lru_cache(THUMBNAILS_CACHED)(self._thumbnail)

    def check_k(self, k: str | int) -> int:
        return whole_number(k, "k", 1, min(MAX_K, len(self.gallery)), f"Choose how many neighbours to show, "
                                                                      f"e.g. {min(DEFAULT_K, len(self.gallery))}")

    def check_index(self, index: str | int, status: int = 400) -> int:
        return whole_number(index, "the galaxy index", 0, len(self.gallery) - 1,
                            f"The gallery holds {len(self.gallery):,} galaxies; pick one of them", status)

    def answer(self, vector: np.ndarray, k: int, query: dict, started: float) -> dict:
        """The JSON of one query: the query, the k nearest galaxies with their cut-out URLs, and the timings."""
        embedded = time.perf_counter()
        rows = [json_safe({**row, "image": f"/api/galaxies/{row['index']}.png"})
                for row in neighbour_rows(vector, self.gallery, self.source, k)]
        seconds = {"embed": embedded - started, "search": time.perf_counter() - embedded}
        return {"query": query, "k": k, "gallery_size": len(self.gallery), **self.about, "neighbours": rows,
                "milliseconds": {key: round(1000 * value, 2) for key, value in seconds.items()}}

    def by_index(self, index: str | int, k: str | int) -> dict:
        """Neighbours of gallery galaxy `index`, from its vector in the index (no embedding)."""
        started = time.perf_counter()
        index, k = self.check_index(index), self.check_k(k)
        details = gallery_details(self.source, self.gallery.labels, np.array([index]))[0]
        query = json_safe({"kind": "galaxy", "index": index, "title": f"galaxy {index}", **details,
                           "image": f"/api/galaxies/{index}.png"})
        try:
            vector = self.gallery.vector(index)
        except DataError as error:
            raise InputError(str(error), 409) from None
        return self.answer(vector, k, query, started)

    def by_milky_way(self, k: str | int) -> dict:
        started = time.perf_counter()
        k = self.check_k(k)
        query = {"kind": MILKY_WAY, "title": "the Milky Way (rendered)", "image": "/api/milky-way.png"}
        return self.answer(self.milky_way, k, query, started)

    def by_upload(self, data: bytes, k: str | int, name: str = "") -> dict:
        """Neighbours of an uploaded PNG/JPEG, prepared like the gallery and embedded."""
        started = time.perf_counter()
        k = self.check_k(k)
        image = self.read_upload(data)
        query = {"kind": "upload", "title": name or "uploaded image", "width": image.shape[1],
                 "height": image.shape[0]}
        return self.answer(self.embed(prepare_image(image, self.spec.image_size, self.spec.crop)), k, query, started)

    def read_upload(self, data: bytes) -> np.ndarray:
        """The uploaded file as uint8 (H, W, channels of the gallery); an InputError when it cannot be a query."""
        if not data:
            raise InputError("the upload is empty. Choose a PNG or JPEG image of a galaxy")
        if len(data) > MAX_UPLOAD_BYTES:
            raise InputError(f"the upload is {len(data) / 2 ** 20:.0f} MB, more than the "
                             f"{MAX_UPLOAD_BYTES // 2 ** 20} MB accepted. Upload a cut-out of the galaxy", 413)
        refuse_huge_images(data)
        try:
            image = decode_image(io.BytesIO(data), self.source.channels)
        except DataError:
            raise InputError("the upload is not an image that can be read (corrupt, or not a PNG or JPEG). "
                             "Choose a PNG or JPEG image of a galaxy", 415) from None
        size = self.spec.image_size
        if min(image.shape[:2]) < size:
            raise InputError(f"the uploaded image is {image.shape[1]}×{image.shape[0]} px, smaller than the "
                             f"{size}×{size} px the model looks at. Upload a cut-out of at least {size}×{size} px",
                             422)
        return image

    def _thumbnail(self, index: int) -> bytes:
        """Gallery row `index` as stored in the source (uncropped), as a small PNG."""
        return png(np.asarray(self.source.read(index, index + 1)[0][0]))


def open_search(run_dir: str | Path | None, index_path: str | Path, embedding: str | None = None,
                **spec_overrides) -> Search:
    """The run's model and gallery (`spec_overrides` as in `gallery_spec`), its index from `index_path`, built
    and saved there first when the file does not exist (as `neighbours --index` does).

    The one place the server opens an index: a .npz gallery or an IDX/ folder of `evaluate.py index`
    (search.index.load_index); of it, the server uses `len`, `search(vectors, k)`, `labels`, `vector(row)` (a
    gallery galaxy's own vector) and `index` (its FAISS type, for --measure)."""
    run = open_run(run_dir, embedding, **spec_overrides)
    source = run.spec.open()
    gallery = open_gallery(source, run.spec, run.model, run.embedding, run_dir, index_path)
    about = {"dataset": source.name, "run": str(run_dir) if run_dir else None, "embedding": run.embedding,
             "model": getattr(run.model, "zoo_name", None)}
    return Search(run.spec, source, gallery, run.embed, about)


def create_app(search: Search) -> FastAPI:
    """The page at /, the JSON API under /api/ (its schema at /openapi.json); bad input answers 4xx + {"error"}."""
    app = FastAPI(title="astrozoo Milky Way search", docs_url=None, redoc_url=None)
    page = PAGE.read_text()

    @app.exception_handler(InputError)
    async def refuse(request: Request, error: InputError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def refuse_route(request: Request, error: HTTPException) -> JSONResponse:
        """Unknown paths (traversal attempts included) and wrong methods, in the API's {"error"} shape."""
        what = {404: f"there is no {request.url.path}", 405: f"{request.url.path} does not take {request.method}"}
        message = what.get(error.status_code, f"{request.url.path} cannot be answered ({error.detail})")
        return JSONResponse({"error": f"{message}. {API_ROUTES}"}, status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def refuse_request(request: Request, error: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(map(str, problem["loc"])) for problem in error.errors())
        return JSONResponse({"error": f"the request's {fields} cannot be read. {API_ROUTES}"}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    async def home() -> str:
        return page

    @app.get("/api/neighbours")
    async def neighbours(index: str | None = None, k: str = str(DEFAULT_K)) -> dict:
        """The k nearest gallery galaxies to gallery galaxy `index`, or to the rendered Milky Way without one."""
        return search.by_milky_way(k) if index is None else search.by_index(index, k)

    @app.post("/api/neighbours")
    async def upload(request: Request, k: str = str(DEFAULT_K), name: str = "") -> dict:
        """The k nearest gallery galaxies to the PNG/JPEG image sent as the request body."""
        return search.by_upload(await request.body(), k, name)

    @app.get("/api/galaxies/{index}.png")
    async def galaxy(index: str) -> Response:
        """Gallery galaxy `index` as stored in the dataset, at most 128 px."""
        return Response(search.thumbnail(search.check_index(index, status=404)), media_type="image/png")

    @app.get("/api/milky-way.png")
    async def milky_way() -> Response:
        return Response(png(milky_way_image(THUMBNAIL_SIZE)), media_type="image/png")

    return app


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (0: any free port), so a port in use stops the command before any work."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as error:
        reason = (error.strerror or str(error)).split(" (while attempting")[0]  # the address create_server appends
        raise UsageError(f"cannot listen on {host}:{port} ({reason}). "
                         "Pass a free --port, or a --host of this machine such as 127.0.0.1") from None


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def run_server(server: uvicorn.Server, sock: socket.socket) -> None:
    """Runs `server` on `sock` in this thread, which answers every query (OpenMP's thread count is per thread)."""
    faiss.omp_set_num_threads(QUERY_THREADS)
    server.run(sockets=[sock])


def serve(search: Search, sock: socket.socket) -> None:
    """Serves the page and API on `sock` until Ctrl+C."""
    run_server(uvicorn.Server(uvicorn.Config(create_app(search), log_level="info")), sock)


@contextlib.contextmanager
def serving(search: Search, sock: socket.socket) -> Iterator[str]:
    """The app served on `sock` from a background thread while the block runs; yields its URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(search), log_level="warning"))
    thread = threading.Thread(target=run_server, args=(server, sock), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped while starting")
        time.sleep(0.01)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join()


def measure_latency(search: Search, sock: socket.socket, n: int, k: int = DEFAULT_K, seed: int = 0) -> dict:
    """Milliseconds per query over HTTP to the served app, after one untimed query of each kind: the Milky Way
    (rendered query embedded), a 256 px PNG upload (decoded, prepared and embedded), random gallery galaxies (read
    from the index). Each time runs from sending the request to the last byte of the JSON answer."""
    upload = png(milky_way_image(256), 256)
    indices = np.random.default_rng(seed).integers(0, len(search.gallery), n + 1)
    kinds = {MILKY_WAY: lambda url, i: urllib.request.urlopen(f"{url}api/neighbours?k={k}"),
             "upload": lambda url, i: urllib.request.urlopen(f"{url}api/neighbours?k={k}", data=upload),
             "galaxy": lambda url, i: urllib.request.urlopen(f"{url}api/neighbours?index={indices[i]}&k={k}")}
    results = {}
    with serving(search, sock) as url:
        for kind, ask in kinds.items():
            times = []
            for i in range(n + 1):
                started = time.perf_counter()
                with ask(url, i) as answer:
                    answer.read()
                times.append(1000 * (time.perf_counter() - started))
            times = times[1:]
            results[kind] = {"median_ms": statistics.median(times), "p95_ms": float(np.percentile(times, 95)),
                             "max_ms": max(times)}
    return {"gallery_size": len(search.gallery), "k": k, "n": n, **search.about,
            "image_size": search.spec.image_size, "dimensions": int(search.gallery.index.d),
            "index": type(search.gallery.index).__name__, "machine": device_name("cpu"), "queries": results}
