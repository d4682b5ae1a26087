"""The HTTP server: a FastAPI app over a model folder, with micro-batched inference and a demo page."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import albertkit
from albertkit.errors import UserError
from albertkit.inference.search import SearchIndex
from albertkit.serve.batcher import MicroBatcher
from albertkit.serve.model_functions import TaskModel

logger = logging.getLogger(__name__)
DEMO_PAGE = Path(__file__).parent / "static" / "index.html"
MASK = "[MASK]"
# JSON may spell one character in up to 12 bytes (an escaped surrogate pair); 64 KiB for the rest of the body.
BYTES_PER_CHAR, BODY_OVERHEAD = 12, 65536


class TextsRequest(BaseModel):
    """Texts to run the model on; the response lists one result per text, in the same order."""

    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(min_length=1, examples=[["a gripping, beautifully acted film"]])


class ClassifyRequest(TextsRequest):
    text_pairs: list[StrictStr] | None = Field(
        None, description="the second text of each pair, for a sentence-pair model (one per text)")


class FillMaskRequest(TextsRequest):
    texts: list[StrictStr] = Field(min_length=1, examples=[["the film was [MASK] ."]])
    top_k: int = Field(5, ge=1, le=100, description="candidates per [MASK]")


class SearchRequest(TextsRequest):
    k: int = Field(5, ge=1, le=1000, description="neighbours per text")


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: StrictStr
    context: StrictStr


class QaRequest(BaseModel):
    """Questions about contexts; the response lists one answer per question, in the same order."""

    model_config = ConfigDict(extra="forbid")
    questions: list[Question] = Field(
        min_length=1, examples=[[{"question": "Who wrote the music?", "context": "The music is by Ennio Morricone."}]]
    )


class BodySizeLimit:
    """ASGI middleware: a request body over `max_bytes` (declared or streamed) gets 413 without being read whole.

    The body is read here and handed on in one piece: the app would read it whole anyway to parse the JSON.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: wait for the disconnect, as the server would say
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body larger than {self.max_bytes} bytes"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


@dataclass
class Service:
    """What every endpoint shares: the model's batch functions, the search index and the request limits."""

    task_model: TaskModel
    batchers: dict[str, MicroBatcher]
    index: SearchIndex | None
    api_key: str | None
    max_batch: int
    max_chars: int
    max_texts: int

    async def require_api_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                headers={"WWW-Authenticate": "Bearer"})

    def check_limits(self, texts: list[str]) -> None:
        if len(texts) > self.max_texts:
            raise HTTPException(413, f"{len(texts)} texts in one request; the limit is {self.max_texts}")
        for i, text in enumerate(texts):
            if len(text) > self.max_chars:
                raise HTTPException(413, f"text {i} has {len(text)} characters; the limit is {self.max_chars}")

    async def run(self, task: str, items: list[Any]) -> list[Any]:
        batcher = self.batchers.get(task)
        if batcher is None:
            raise HTTPException(404, f"this model ({type(self.task_model.model).__name__}) does not support {task}; "
                                     f"it supports: {', '.join(self.task_model.tasks)}")
        return await batcher.submit(items)

    @asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        # One model thread: forward passes run one after another, each using all of torch's intra-op threads.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="albertkit-model")
        for batcher in self.batchers.values():
            batcher.executor = executor
        yield
        for batcher in self.batchers.values():
            await batcher.stop()
            batcher.executor = None
        executor.shutdown(wait=False, cancel_futures=True)


def create_app(
    model_dir: str | Path,
    api_key: str | None = None,
    max_batch: int = 64,
    max_chars: int = 10000,
    max_texts: int = 256,
    index_dir: str | Path | None = None,
    max_wait_ms: float = 5.0,
    quantize: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    backend: str = "torch",
) -> FastAPI:
    """The app serving `model_dir`: POST /v1/{classify,embed,fill-mask,ner,qa,search}, GET /healthz, /v1/model, /.

    Requests from concurrent clients are gathered into forward passes of up to `max_batch` texts (waiting at
    most `max_wait_ms` for company). A request may hold `max_texts` texts of `max_chars` characters each.
    With `api_key`, /v1/ endpoints want `Authorization: Bearer <api_key>`. `index_dir` (built with the same
    model) enables /v1/search. `quantize="int8"` serves the int8 model (CPU). The model runs on `device` (auto: a
    CUDA GPU when there is one) in `precision` (auto: bf16 autocast on CUDA, fp32 elsewhere). `backend="onnx"`:
    the folder is an `albertkit export` and its head runs on onnxruntime (classify, ner, qa; no embed or fill-mask).
    """
    for name, value in (("max_batch", max_batch), ("max_chars", max_chars), ("max_texts", max_texts)):
        if value < 1:
            raise UserError(f"{name} must be at least 1, got {value}")
    index = None
    if index_dir is not None:
        index = SearchIndex(index_dir)
        index.check_model(model_dir)
    task_model = TaskModel(model_dir, pooling=index.meta["pooling"] if index else "mean", quantize=quantize,
                           device=device, precision=precision, backend=backend)
    batchers = {task: MicroBatcher(fn, None, max_batch, max_wait_ms) for task, fn in task_model.functions.items()}
    service = Service(task_model, batchers, index, api_key, max_batch, max_chars, max_texts)
    app = FastAPI(
        title="albertkit", version=albertkit.__version__, lifespan=service.lifespan,
        description=f"ALBERT inference for {Path(model_dir).name} ({type(task_model.model).__name__}).",
    )
    app.state.task_model = task_model
    app.state.batchers = batchers
    app.add_middleware(BodySizeLimit, max_bytes=max_texts * max_chars * BYTES_PER_CHAR + BODY_OVERHEAD)
    _add_error_handlers(app)
    _add_service_routes(app, service)
    _add_inference_routes(app, service)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, err: RequestValidationError) -> JSONResponse:
        # The offending input is left out: echoing a large body back would double its cost.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in err.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, err: Exception) -> JSONResponse:
        logger.exception("request failed", exc_info=err)
        return JSONResponse({"detail": f"internal error: {type(err).__name__}"}, status_code=500)


def _add_service_routes(app: FastAPI, service: Service) -> None:
    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness: answers while the server runs; says whether /v1/ endpoints want an API key."""
        return {"status": "ok", "auth_required": service.api_key is not None}

    @app.get("/v1/model", tags=["service"], dependencies=[Depends(service.require_api_key)])
    async def model_info() -> dict[str, Any]:
        """The served model: head, tasks, labels, sizes, the search index, request limits and batching counts."""
        index = service.index
        return {
            **service.task_model.describe(),
            "index": None if index is None else {"count": len(index), "pooling": index.meta["pooling"]},
            "limits": {"max_texts": service.max_texts, "max_chars": service.max_chars, "max_batch": service.max_batch},
            "batching": {task: {"forward_passes": b.forward_passes, "texts": b.items_done}
                         for task, b in service.batchers.items()},
        }

    @app.get("/", include_in_schema=False)
    async def demo() -> HTMLResponse:
        return HTMLResponse(DEMO_PAGE.read_text(encoding="utf-8"))


def _add_inference_routes(app: FastAPI, service: Service) -> None:
    authorized = [Depends(service.require_api_key)]
    check_limits, run = service.check_limits, service.run

    @app.post("/v1/classify", tags=["inference"], dependencies=authorized)
    async def classify(body: ClassifyRequest) -> dict[str, Any]:
        """Class probabilities per text or text pair (sequence-classification models); regression: a score."""
        check_limits(body.texts)
        if body.text_pairs is None:
            return {"results": await run("classify", body.texts)}
        check_limits(body.text_pairs)
        if len(body.text_pairs) != len(body.texts):
            raise HTTPException(422, f"{len(body.texts)} texts but {len(body.text_pairs)} text_pairs")
        return {"results": await run("classify", list(zip(body.texts, body.text_pairs, strict=True)))}

    @app.post("/v1/embed", tags=["inference"], dependencies=authorized)
    async def embed(body: TextsRequest) -> dict[str, Any]:
        """Unit-length sentence embeddings (any model)."""
        check_limits(body.texts)
        vectors = await run("embed", body.texts)
        return {"embeddings": [v.tolist() for v in vectors], "dimension": service.task_model.encoder.dimension}

    @app.post("/v1/fill-mask", tags=["inference"], dependencies=authorized)
    async def fill_mask(body: FillMaskRequest) -> dict[str, Any]:
        """Candidates for every [MASK] of each text (masked-LM and pretraining models)."""
        check_limits(body.texts)
        if "fill-mask" in service.batchers:
            missing = [i for i, text in enumerate(body.texts) if MASK not in text]
            if missing:
                raise HTTPException(422, f"text {missing[0]} has no {MASK} to fill")
        return {"results": await run("fill-mask", [(text, body.top_k) for text in body.texts])}

    @app.post("/v1/ner", tags=["inference"], dependencies=authorized)
    async def ner(body: TextsRequest) -> dict[str, Any]:
        """Tags per token and the entity spans (token-classification models)."""
        check_limits(body.texts)
        return {"results": await run("ner", body.texts)}

    @app.post("/v1/qa", tags=["inference"], dependencies=authorized)
    async def qa(body: QaRequest) -> dict[str, Any]:
        """The answer span of each question in its context (question-answering models)."""
        check_limits([item.context for item in body.questions])
        check_limits([item.question for item in body.questions])
        return {"results": await run("qa", [(item.question, item.context) for item in body.questions])}

    @app.post("/v1/search", tags=["inference"], dependencies=authorized)
    async def search(body: SearchRequest) -> dict[str, Any]:
        """The k nearest indexed texts by cosine similarity (when the server was given an index)."""
        check_limits(body.texts)
        if service.index is None:
            raise HTTPException(404, "no search index loaded: start the server with --index DIR")
        queries = np.stack(await run("embed", body.texts))
        hits = await asyncio.get_running_loop().run_in_executor(service.batchers["embed"].executor,
                                                                service.index.hits, queries, body.k)
        return {"results": [[vars(hit) for hit in text_hits] for text_hits in hits]}


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_batch: int = 64,
    max_chars: int = 10000,
    max_texts: int = 256,
    index_dir: str | Path | None = None,
    quantize: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    backend: str = "torch",
) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    app = create_app(model_dir, api_key=api_key, max_batch=max_batch, max_chars=max_chars,
                     max_texts=max_texts, index_dir=index_dir, quantize=quantize, device=device,
                     precision=precision, backend=backend)
    if not _is_loopback(host) and api_key is None:
        logger.warning("serving on %s without --api-key: anyone who can reach this address can use the model", host)
    uvicorn.run(app, host=host, port=port, log_level="info")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
