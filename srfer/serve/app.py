"""The HTTP API (FastAPI): srfer's Python API over HTTP, nothing else — every endpoint calls
`srfer.infer.api`, in a bounded pool of inference threads (`InferencePool`).

Versioned JSON under `/v1` (OpenAPI at `/openapi.json`, `/docs`), `GET /health`, `GET /metrics`
(Prometheus), and the web page at `/`. Errors are `{"error": "…"}` with their status: 400 a bad
request, 401/403 a missing or wrong API key, 404 an unknown person, 413 an upload over its size
or pixel limit, 422 an input that is not a usable image, 503 a full queue (with Retry-After) or
a gallery database that is down; never a stack trace."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from base64 import b64encode
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from srfer.core.errors import ServiceUnavailable, SrferError, TooLarge
from srfer.core.imageio import decode_bytes
from srfer.faces.annotate import annotate, strips
from srfer.infer import api
from srfer.infer.options import VERIFY_HEAD_HELP
from srfer.serve.metrics import Metrics
from srfer.serve.options import ServeOptions
from srfer.serve.pool import InferencePool, Overloaded
from srfer.serve.security import Keys, read_upload, valid_name

OPTIONS_ENV = "SRFER_SERVE_OPTIONS"  # how `--workers N` hands the options to each process
log = logging.getLogger("srfer.serve")


def create_app(options: ServeOptions) -> FastAPI:
    keys = Keys(options.api_key(), options.protect_reads)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        state["pool"] = InferencePool(options.inference_threads(), options.queue)
        state["gallery"] = GalleryHandle(options)
        await state["pool"].run(_warm_up, options)  # models load once, before the first request
        yield
        state["pool"].close()
        state["gallery"].close()

    about = "Recognition for low-resolution faces: expression, identity, super-resolution."
    app = FastAPI(title="srfer", version="1", lifespan=lifespan, description=about)
    if options.cors_origin:
        app.add_middleware(CORSMiddleware, allow_origins=options.cors_origin, allow_methods=["*"],
                           allow_headers=["*"])  # fmt: skip
    metrics = Metrics(lambda: state["pool"].depth if "pool" in state else 0)
    limit = int(options.max_upload_mb * 1e6)
    _errors(app)

    @app.middleware("http")
    async def measure(request: Request, call_next):
        start = time.perf_counter()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + (1 << 20):  # multipart framing on top
            response: Response = _error(413, f"over the {options.max_upload_mb:g} MB upload limit")
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe(getattr(route, "path", "other"), response.status_code, time.perf_counter() - start)
        return response

    async def image(upload: UploadFile) -> tuple[str, Image.Image]:
        data = await read_upload(upload, limit)
        name = Path(upload.filename or "upload").name
        return name, await state["pool"].run(decode_bytes, data, name)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return files("srfer.serve").joinpath("static/index.html").read_text()

    @app.get("/health")
    async def health() -> JSONResponse:
        gallery = await state["pool"].run(state["gallery"].status) if "pool" in state else "starting"
        ok = gallery in ("ok", "none")
        body = {"status": "ok" if ok else "degraded", "models": "loaded", "gallery": gallery}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(metrics.text(), media_type=metrics.content_type)

    @app.post("/v1/analyze")
    async def analyze(request: Request, image_file: UploadFile = File(..., alias="image"),
                      pictures: bool = Query(False, description="Add the annotated photo and each face's "
                                             "input | bicubic | SR strip (PNG data URLs)."),
                      embeddings: bool = Query(False), detect: bool = Query(True)) -> dict:  # fmt: skip
        """Every face of a photo: box, size, SR, expression (and identity when the server has a gallery)."""
        keys.check(request, write=False)
        name, img = await image(image_file)
        gallery = state["gallery"].get() if options.gallery else None
        faces = await state["pool"].run(api.analyze, img, gallery=gallery, pictures=pictures,
                                        embeddings=embeddings, detect=detect, device=options.device,
                                        runtime=options.runtime)  # fmt: skip
        metrics.faces(len(faces))
        body: dict[str, Any] = {"image": name, "size": list(img.size), "faces": []}
        drawn = strips(faces) if pictures else {}
        for face in faces:
            row = {**face.to_dict(), "image": name}
            if face.index in drawn:
                row["strip"] = _data_url(drawn[face.index])
            body["faces"].append(row)
        if pictures:
            body["annotated"] = _data_url(annotate(img, faces))
        return body

    @app.post("/v1/verify")
    async def verify(request: Request, a: UploadFile = File(...), b: UploadFile = File(...),
                     head: str = Query("auto", description=VERIFY_HEAD_HELP)) -> dict:  # fmt: skip
        """Whether the largest faces of two photos are the same person."""
        keys.check(request, write=False)
        (name_a, img_a), (name_b, img_b) = await image(a), await image(b)
        result = await state["pool"].run(
            api.verify, img_a, img_b, head=head, device=options.device, runtime=options.runtime
        )
        body = result.to_dict()
        for row, name in zip(body["faces"], (name_a, name_b), strict=True):
            row["image"] = name
        return body

    @app.post("/v1/upscale", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def upscale(
        request: Request, image_file: UploadFile = File(..., alias="image"),
        model: str = Query("psnr", description="psnr, gan, identity or x8"),
    ) -> Response:  # fmt: skip
        """A face crop super-resolved ×4 (×8 with x8), as PNG."""
        keys.check(request, write=False)
        _, img = await image(image_file)
        out = await state["pool"].run(api.upscale, img, model, device=options.device, runtime=options.runtime)
        return Response(_png(out), media_type="image/png")

    @app.post("/v1/enhance", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def enhance(request: Request, image_file: UploadFile = File(..., alias="image"),
                      scale: int = Query(4, description="2 or 4")) -> Response:  # fmt: skip
        """A photo upscaled ×scale with every face super-resolved and pasted back, as PNG
        (header X-Srfer-Faces: the faces restored)."""
        keys.check(request, write=False)
        _, img = await image(image_file)
        result = await state["pool"].run(
            api.enhance, img, scale, device=options.device, runtime=options.runtime
        )
        metrics.faces(len(result.faces))
        return Response(_png(result.image), media_type="image/png",
                        headers={"X-Srfer-Faces": str(len(result.faces))})  # fmt: skip

    @app.get("/v1/gallery")
    async def gallery_list(request: Request) -> dict:
        """Enrolled people and how many embeddings each has."""
        keys.check(request, write=False)
        gallery = state["gallery"].get()
        return {"identities": await state["pool"].run(gallery.list)}

    @app.post("/v1/gallery/identify")
    async def gallery_identify(request: Request, images: list[UploadFile] = File(...)) -> dict:
        """The nearest enrolled person of each face crop, or "unknown" beyond τ."""
        keys.check(request, write=False)
        named = [await image(f) for f in images]
        matches = await state["pool"].run(state["gallery"].get().identify, [img for _, img in named])
        return {
            "matches": [{"image": name, **m.__dict__} for (name, _), m in zip(named, matches, strict=True)]
        }

    @app.post("/v1/gallery/{name}")
    async def gallery_enroll(request: Request, name: str, images: list[UploadFile] = File(...)) -> dict:
        """Enrols a person's face crops (all or none). Needs the API key."""
        keys.check(request, write=True)
        name = valid_name(name)
        crops = [img for _, img in [await image(f) for f in images]]
        added = await state["pool"].run(state["gallery"].get().enroll, name, crops)
        return {"name": name, "added": added}

    @app.delete("/v1/gallery/{name}")
    async def gallery_remove(request: Request, name: str) -> dict:
        """Removes a person and all their embeddings. Needs the API key."""
        keys.check(request, write=True)
        name = valid_name(name)
        try:
            removed = await state["pool"].run(state["gallery"].get().remove, name)
        except SrferError as exc:
            if "no identity named" in str(exc):
                raise HTTPException(404, f"no person named {name!r}") from None
            raise
        return {"name": name, "removed": removed}

    return app


def _warm_up(options: ServeOptions) -> None:
    """Loads predict's networks (those a request needs first) once, at start."""
    api.analyze(Image.new("RGB", (32, 32), (128, 128, 128)), detect=False, device=options.device,
                runtime=options.runtime)  # fmt: skip


class GalleryHandle:
    """The server's gallery, opened on first use and again after its database went away, so
    that the server starts and stays up while PostgreSQL is down (those requests get 503)."""

    def __init__(self, options: ServeOptions) -> None:
        self.options, self._gallery = options, None

    def get(self) -> api.Gallery:
        if self.options.gallery is None:
            raise HTTPException(404, "this server has no gallery (start it with --gallery)")
        if self._gallery is None:
            self._gallery = api.Gallery(self.options.gallery, device=self.options.device)
        return self._gallery

    def status(self) -> str:
        if self.options.gallery is None:
            return "none"
        try:
            self.get().list()
        except ServiceUnavailable as exc:
            return f"unavailable: {exc}"
        return "ok"

    def close(self) -> None:
        if self._gallery is not None:
            self._gallery.close()


def _errors(app: FastAPI) -> None:
    """Every failure as `{"error": "…"}` with its status, in one line, never a traceback."""

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException, and routing's 404/405
    async def http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        return _error(422 if where else 400, f"{where}: {first.get('msg', 'invalid request')}".strip(": "))

    @app.exception_handler(SrferError)
    async def srfer(_: Request, exc: SrferError) -> JSONResponse:
        if isinstance(exc, Overloaded):
            return _error(503, str(exc), {"Retry-After": "1"})
        if isinstance(exc, ServiceUnavailable):
            return _error(503, str(exc), {"Retry-After": "5"})
        return _error(413 if isinstance(exc, TooLarge) else 422, str(exc))

    @app.exception_handler(ClientDisconnect)
    async def gone(_: Request, exc: ClientDisconnect) -> JSONResponse:
        return _error(400, "the client went away mid-request")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__, exc)
        return _error(500, "internal error")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _data_url(img: Image.Image) -> str:
    return "data:image/png;base64," + b64encode(_png(img)).decode()


def app_from_environment() -> FastAPI:
    """The app of one of `--workers N` processes (uvicorn's factory): options from the environment."""
    return create_app(ServeOptions(**json.loads(os.environ[OPTIONS_ENV])))
