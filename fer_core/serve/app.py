"""The HTTP API as a FastAPI app: ``create_app(engine, config)``, served by uvicorn (``fer serve``) or
inside a Ray Serve deployment (``fer serve --engine ray``).

Every refusal is a JSON :class:`~fer_core.serve.schemas.ErrorResponse` naming what was wrong: 401
without a valid API key (when keys are configured), 408 for a body that does not arrive within
``max_body_seconds``, 413 over a budget (the body is counted as it arrives, an image's pixels are
read from its header before it is decoded), 415 for a body that is neither a multipart form nor an
image, 422 for an unusable image or parameter, 503 with
``Retry-After`` when ``max_in_flight_requests`` requests are being analysed (instead of queueing
without bound) or the models are not loaded yet. A fault of ours is a 500 that names nothing
internal; the traceback goes to the server's log only.
"""

import asyncio
import hmac
import logging
import os
from collections.abc import Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from fer_core.inference.detect import DETECTOR_NAMES
from fer_core.model_card import ModelCard
from fer_core.serve.analysis import (
    ImageInput,
    ImageOutcome,
    ModelAlias,
    RequestError,
    faces_array,
    model_paths,
    scheme_labels,
)
from fer_core.serve.engines import Engine
from fer_core.serve.schemas import (
    AnalyzeResponse,
    ClassifyRequest,
    ErrorResponse,
    Health,
    ModelInfo,
    ModelsResponse,
    Readiness,
)
from fer_core.settings import AnalysisSettings, Budgets, SettingsError, default_detector

log = logging.getLogger("fer_core.serve")

API_KEYS_ENV = "FER_API_KEYS"
RETRY_AFTER_S = 1
DetectorName = Literal[DETECTOR_NAMES]  # type: ignore[valid-type]
STATUS_CODES = {413: "image_too_large", 422: "unusable_image", 500: "internal"}
ERRORS = {status: {"model": ErrorResponse} for status in (401, 408, 413, 415, 422, 500, 503)}


@dataclass(frozen=True)
class ServeConfig:
    """The server's budgets and API keys (no key: the API is open)."""

    budgets: Budgets = field(default_factory=Budgets.from_env)
    api_keys: frozenset[str] = frozenset()


def read_api_keys(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> frozenset[str]:
    """The API keys: one per line of ``path`` (blank lines and ``#`` comments skipped), else the
    comma-separated ``$FER_API_KEYS``; empty when neither is given."""
    if path is not None:
        lines = Path(path).read_text().splitlines()
        return frozenset(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
    raw = (os.environ if environ is None else environ).get(API_KEYS_ENV, "")
    return frozenset(key.strip() for key in raw.split(",") if key.strip())


class BodyTooLarge(Exception):
    """The request body passed ``max_request_bytes`` while it was being received."""


class BodyTooSlow(Exception):
    """The request body was not complete ``max_body_seconds`` after the request began."""


class BodyLimit:
    """ASGI middleware: a declared ``Content-Length`` over the budget is refused before any byte is read,
    the bytes that arrive are counted (a chunked or lying body is stopped at the budget), and a body
    still incomplete after ``max_seconds`` is given up (a client trickling bytes would hold one of the
    ``max_in_flight_requests`` for ever)."""

    def __init__(self, app, max_bytes: int, max_seconds: float):
        self.app, self.max_bytes, self.max_seconds = app, max_bytes, max_seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = error_response(413, "body_too_large", f"the request body is over the budget "
                                                             f"max_request_bytes ({self.max_bytes} bytes)")
            return await response(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline, received, complete = loop.time() + self.max_seconds, 0, False

        async def counted():
            nonlocal received, complete
            if complete:  # after the body: a disconnect, whenever it comes
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        return await self.app(scope, counted, send)


class Admission:
    """At most ``limit`` requests analysed at once; one more is refused (503), never queued."""

    def __init__(self, limit: int):
        self.limit, self.in_flight = limit, 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.in_flight >= self.limit:
            raise RequestError(503, "saturated", f"the server is analysing {self.in_flight} requests, its budget "
                                                 "max_in_flight_requests; retry later")
        self.in_flight += 1  # one event loop: no other coroutine runs between the test and this
        try:
            yield
        finally:
            self.in_flight -= 1


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(ErrorResponse(error=message, code=code).model_dump(), status_code=status, headers=headers)


def create_app(engine: Engine, config: ServeConfig | None = None) -> FastAPI:
    """The API on ``engine``; the models load when the app starts (``/readyz`` says when they are)."""
    config = config or ServeConfig()
    budgets = config.budgets
    admission = Admission(budgets.max_in_flight_requests)
    paths = model_paths()
    cards = {alias: ModelCard.load(path) for alias, path in paths.items()}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await engine.start()
        yield

    app = FastAPI(title="FER2013 facial expression API", version="1", lifespan=lifespan,
                  description="Faces and their emotions in images, on the shipped models. docs/api.md has examples.")
    app.add_middleware(BodyLimit, max_bytes=budgets.max_request_bytes, max_seconds=budgets.max_body_seconds)
    add_error_handlers(app)

    def authorised(request: Request) -> None:
        if not config.api_keys:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not any(hmac.compare_digest(given.encode(), key.encode()) for key in config.api_keys):
            raise RequestError(401, "unauthorized", "a valid API key is needed: header 'Authorization: Bearer KEY' "
                                                    "or 'X-API-Key: KEY'")

    def settings_for(model: str, detector: str, tta: bool, scheme: str | None) -> AnalysisSettings:
        if not engine.ready:
            raise RequestError(503, "not_ready", "the models are still loading; retry later")
        scheme_labels(cards[model], scheme)  # refuses a view the model's classes cannot be summed into
        return AnalysisSettings(model=str(paths[model].resolve()), detector=detector, tta=tta,
                                scheme=scheme or None, budgets=budgets)

    def answer(outcomes: list[ImageOutcome], model: str, scheme: str | None) -> AnalyzeResponse:
        """The response; a request of one input that was refused gets that input's error status."""
        if len(outcomes) == 1 and outcomes[0].error is not None:
            only = outcomes[0]
            raise RequestError(only.status, STATUS_CODES.get(only.status, "internal"), f"{only.name}: {only.error}")
        return AnalyzeResponse(model=cards[model].name, labels=list(scheme_labels(cards[model], scheme)),
                               images=[o.record() for o in outcomes])

    auth = [Depends(authorised)]
    photo_detector = default_detector("photo")
    ModelParam = Annotated[ModelAlias, Query(description="accurate (default) or fast")]
    TtaParam = Annotated[bool, Query(description="average the model's test-time views (its card says which)")]
    SchemeParam = Annotated[str | None, Query(description="report another label view, e.g. smile (happy or not)")]

    @app.post("/v1/analyze", response_model=AnalyzeResponse, responses=ERRORS, dependencies=auth,
              openapi_extra=IMAGES_BODY, summary="Find the faces in images and classify their emotions")
    async def analyze(request: Request, model: ModelParam = "accurate",
                      detector: Annotated[DetectorName, Query(description="face detector")] = photo_detector,
                      tta: TtaParam = True, scheme: SchemeParam = None,
                      max_faces: Annotated[int | None, Query(ge=1, description="only the N largest faces")] = None):
        """One or more images as multipart field ``file`` (repeatable), or one image as the raw body with an
        ``image/*`` content type. One bad image among several gets an error row; the others are analysed."""
        with admission.slot():
            settings = settings_for(model, detector, tta, scheme)
            items = await read_images(request, budgets)
            outcomes = await engine.analyze(items, settings, max_faces=max_faces)
            return answer(outcomes, model, scheme)

    @app.post("/v1/classify", response_model=AnalyzeResponse, responses=ERRORS, dependencies=auth,
              openapi_extra={"requestBody": {"content": {
                  "application/json": {"schema": ClassifyRequest.model_json_schema()},
                  **IMAGES_BODY["requestBody"]["content"]}}},
              summary="Classify already-cropped faces (no detection)")
    async def classify(request: Request, model: ModelParam = "accurate", tta: TtaParam = True,
                       scheme: SchemeParam = None):
        """A batch of 48×48 gray arrays as JSON ``{"faces": [...]}``, or face images (multipart ``file``,
        or one raw ``image/*`` body), each classified whole as one face, all in one batch."""
        with admission.slot():
            settings = settings_for(model, photo_detector, tta, scheme)
            if media_type(request) == "application/json":
                faces = await read_face_arrays(request, budgets)
                outcomes = await engine.classify_arrays(faces, settings)
            else:
                outcomes = await engine.analyze(await read_images(request, budgets), settings, whole_image=True)
            return answer(outcomes, model, scheme)

    @app.get("/v1/models", response_model=ModelsResponse, responses=ERRORS, dependencies=auth,
             summary="The shipped models")
    async def models() -> ModelsResponse:
        return ModelsResponse(models=[ModelInfo.from_card(alias, card) for alias, card in cards.items()])

    @app.get("/healthz", response_model=Health, summary="The server answers")
    async def healthz() -> Health:
        return Health()

    @app.get("/readyz", response_model=Readiness, responses=ERRORS, summary="The models are loaded")
    async def readyz() -> JSONResponse:
        body = Readiness(ready=engine.ready, in_flight=admission.in_flight, max_in_flight=admission.limit)
        return JSONResponse(body.model_dump(), status_code=200 if engine.ready else 503)

    return app


IMAGES_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_images(request: Request, budgets: Budgets) -> list[ImageInput]:
    """The images of a request: the multipart fields ``file``, or the whole body of an ``image/*`` request."""
    kind = media_type(request)
    if kind.startswith("image/"):
        return [ImageInput("image", await request.body())]
    if kind != "multipart/form-data":
        raise RequestError(415, "unsupported_media_type", f"content type {kind or 'none'!r}: send multipart/form-data "
                                                          "with one or more 'file' fields, or one image as image/*")
    return await read_form_images(request, budgets)


async def read_form_images(request: Request, budgets: Budgets) -> list[ImageInput]:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    limit = budgets.max_images_per_request
    try:
        async with aclosing(request.stream()) as stream:
            form = await MultiPartParser(request.headers, stream, max_files=limit, max_fields=limit).parse()
    except MultiPartException as exc:
        if exc.message.startswith("Too many files"):
            raise RequestError(413, "too_many_images", f"more than {limit} images: over the budget "
                                                       "max_images_per_request") from None
        raise RequestError(400, "bad_multipart", f"the multipart body cannot be read: {exc.message}") from None
    try:
        files = form.getlist("file")
        if not files:
            raise RequestError(422, "no_file", "no 'file' field in the form: send each image as a field named file")
        if not all(isinstance(f, UploadFile) for f in files):
            raise RequestError(422, "no_file", "a 'file' field is text, not a file part")
        return [ImageInput(f.filename or f"file[{i}]", await f.read()) for i, f in enumerate(files)]
    finally:
        await form.close()


async def read_face_arrays(request: Request, budgets: Budgets):
    body = await request.body()
    try:
        faces = ClassifyRequest.model_validate_json(body).faces
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RequestError(422, "invalid_faces", f"{where}: {first['msg']} (send {{\"faces\": [48×48 arrays of "
                                                 f"0-255]}})") from None
    if len(faces) > budgets.max_faces_per_request:
        raise RequestError(413, "too_many_faces", f"{len(faces)} faces is over the budget max_faces_per_request "
                                                  f"({budgets.max_faces_per_request})")
    return faces_array(faces)


def add_error_handlers(app: FastAPI) -> None:
    """Every error as an :class:`ErrorResponse`; a 500 without detail (the traceback is logged)."""

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return error_response(413, "body_too_large", "the request body is over the budget max_request_bytes")

    @app.exception_handler(BodyTooSlow)
    async def too_slow(request: Request, exc: BodyTooSlow) -> JSONResponse:
        return error_response(408, "body_too_slow", "the request body did not arrive within the budget "
                                                    "max_body_seconds")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return error_response(422, "invalid_parameter", f"{where}: {first['msg']}")

    @app.exception_handler(SettingsError)
    async def bad_setting(request: Request, exc: SettingsError) -> JSONResponse:
        return error_response(422, "invalid_parameter", str(exc))

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal server error (logged by the server)")
