"""``mathmatch serve``: the match pipeline behind an HTTP API, and a search page.

The application (:func:`create_app`, FastAPI) answers from one
:class:`~mathmatch.service.Service`: the pipeline ``mathmatch match`` runs, loaded once, over
the last committed state of the index folder, opened again after each commit and never
written (see :mod:`mathmatch.service`). Endpoints (the OpenAPI schema is ``/openapi.json``,
shown at ``/docs``):

* ``POST /search`` ``{"question", "k"?, "mode"?}``: ranked records as stored, with why each
  ranked (:mod:`mathmatch.explain`) and safe HTML to show them (:mod:`mathmatch.display`);
* ``POST /duplicates`` ``{"question", "final"?, "k"?}``: stored questions that may be the same
  problem, with the verdict and its evidence;
* ``GET /records/{id}``, ``GET /healthz``, ``GET|POST /preview`` (LaTeX as MathML);
* ``/``: the search page (``static/``: plain HTML, CSS and a little JavaScript, nothing
  fetched from elsewhere).

Safety: it listens on 127.0.0.1 unless told otherwise, and then answers only requests that
name a local host (a page elsewhere cannot reach it through DNS rebinding); bodies over
``max_body_bytes`` are refused (413); questions go through the hardened MathML parser (422
naming the problem); a bug answers a short 500 and logs its traceback.

Example:
    >>> serve(Path("build/demo-index"), ServeConfig(port=8080))  # doctest: +SKIP
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, and their
# models are defined inside _schemas() (pydantic and FastAPI are imported only to serve).
import asyncio
import logging
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

from mathcore import __version__
from mathcore.device import DEVICES, backend_option
from mathcore.options import option
from mathmatch.display import QueryError, display, latex_to_mathml, prepare
from mathmatch.pipeline import MatchConfig
from mathmatch.respond import WRITERS

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().with_name("static")
INSTALL = "pip install 'mathmatch[serve]'"


@dataclass(frozen=True)
class ServeConfig:
    """How ``mathmatch serve`` runs (the match settings are :class:`MatchConfig`'s defaults).

    Example:
        >>> ServeConfig(port=8080).host
        '127.0.0.1'
    """

    host: str = option("127.0.0.1", "address to listen on; anything but a loopback address "
                       "lets other machines query the index (there is no authentication)")
    port: int = option(8000, "port to listen on")
    rerank: str | None = option(None, "rescore the first candidates with this cross-scorer "
                                "checkpoint ('default': the one shipped with mathmatch)",
                                metavar="CKPT", default_text="none")
    symbolic: bool = option(False, "break near-ties by symbolic evidence about the "
                            "candidates' final answers")
    max_body_bytes: int = option(256 * 1024, "refuse request bodies larger than N bytes",
                                 metavar="N", default_text="256 KiB")
    k_max: int = option(100, "most hits a request may ask for", metavar="N")
    device: str = option("cpu", "where the encoder and the cross-scorer run", choices=DEVICES)
    backend: str = backend_option()
    writer: str = option("auto", "where the HTML of /search responses is written while the "
                         "next requests are searched: 'process' (a process of its own), "
                         "'thread', or 'auto' (a process when the machine has more than one "
                         "core)", choices=WRITERS)

    def __post_init__(self) -> None:
        if self.writer not in WRITERS:
            raise ValueError(f"writer must be one of {WRITERS}, got {self.writer!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")
        depth = MatchConfig().depth  # the score parts are those of the fused first `depth`
        if not 1 <= self.k_max <= depth:
            raise ValueError(f"k_max must be 1..{depth}, got {self.k_max}")
        MatchConfig(rerank=self.rerank, symbolic=self.symbolic, device=self.device)

    def match_config(self, mode: str) -> MatchConfig:
        return MatchConfig(mode=mode, rerank=self.rerank, symbolic=self.symbolic,
                           device=self.device, backend=self.backend)


@cache
def _schemas() -> Any:
    """The request and response models (pydantic: imported only to serve)."""
    from types import SimpleNamespace
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class Request(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class SearchRequest(Request):
        question: str = Field(description="words, words with $LaTeX$ (or \\(...\\), $$...$$), "
                              "MathML, or all of them")
        k: int = Field(10, ge=1, description="hits to return (at most the server's k_max)")
        mode: Literal["dense", "bm25", "hybrid"] | None = Field(
            None, description="retrieval mode (default: hybrid where the index has both parts)")

    class DuplicatesRequest(Request):
        question: str = Field(description="as for /search")
        final: str | None = Field(None, description="the question's final answer (MathML, "
                                  "$LaTeX$ or text): a stored question whose own answer differs "
                                  "is no duplicate")
        k: int = Field(5, ge=1, description="candidates to return (at most k_max)")

    class PreviewRequest(Request):
        latex: str | None = Field(None, description="one LaTeX formula")
        text: str | None = Field(None, description="a whole question, as for /search")

    class Part(BaseModel):
        score: float | None = Field(description="dense: cosine of query and answer vectors; "
                                    "bm25: the BM25 score of the answer for the query")
        rank: int | None = Field(description="rank in its own ranking (the first `depth`)")
        part: float | None = Field(description="what it adds to the first-stage score")

    class Term(BaseModel):
        coverage: float = Field(description="share of the question's numbers (formulas) that "
                                "the answer has")
        weight: float
        part: float = Field(description="weight x coverage, added to the first-stage score")
        numbers: list[str] | None = None

    class Why(BaseModel):
        first_stage: float = Field(description="the first stage's score: in hybrid mode "
                                   "dense.part + bm25.part + givens.part (+ formulas.part)")
        dense: Part | None
        bm25: Part | None
        givens: Term | None
        formulas: Term | None
        rerank: float | None = Field(description="the cross-scorer's score (with --rerank)")

    class Display(BaseModel):
        question: str
        answer: str
        final: str | None

    class Highlight(BaseModel):
        numbers: list[str] = Field(description="the question's numbers the answer has")
        formulas: list[str] = Field(description="the question's formulas the answer restates")

    class Hit(BaseModel):
        rank: int
        id: str
        score: float = Field(description="the pipeline's score (after reranking and tie-break)")
        source: str
        question: str = Field(description="as stored (MathML untouched)")
        answer: str = Field(description="as stored (MathML untouched)")
        final: str | None
        why: Why
        highlight: Highlight
        display: Display = Field(description="safe HTML: escaped text, MathML elements and "
                                 "attributes only, the question's givens marked")

    class State(BaseModel):
        updated: str | None
        checksum: str | None
        records: int | None

    class SearchResponse(BaseModel):
        question: str
        query: str = Field(description="the question as searched (LaTeX written as MathML)")
        mode: str
        k: int
        state: State = Field(description="the committed state that answered")
        hits: list[Hit]

    class Diff(BaseModel):
        shared: list[str]
        only_query: list[str]
        only_candidate: list[str]

    class Answers(BaseModel):
        query: str | None
        candidate: str | None
        differ: bool | None = Field(description="SymPy finds the two final answers different "
                                    "(under its time limit); null: one is unknown")

    class Evidence(BaseModel):
        restated: bool = Field(description="the same givens, formulas and content words")
        shared_givens: float = Field(description="share of the givens both have")
        givens: Diff
        formulas: Diff
        answers: Answers

    class Candidate(BaseModel):
        id: str
        score: float
        duplicate: bool = Field(description="score >= threshold")
        kind: Literal["duplicate", "near-duplicate", "different"]
        cosine: float
        question: str
        final: str | None
        display: str
        evidence: Evidence

    class DuplicatesResponse(BaseModel):
        question: str
        verdict: Literal["duplicate", "near-duplicate", "new"]
        threshold: float
        questions: Literal["current", "stale"]
        note: str | None
        state: State
        candidates: list[Candidate]

    class RecordResponse(BaseModel):
        id: str
        source: str
        origin: str
        question: str
        answer: str
        final: str | None
        meta: dict[str, Any]
        display: Display

    class PreviewResponse(BaseModel):
        mathml: str = Field(description="the MathML (for text: the question with LaTeX "
                            "written as MathML)")
        html: str = Field(description="safe HTML to show it")

    class Health(BaseModel):
        status: str
        version: str
        index: str
        records: int | None
        encoder: str | None
        modes: list[str]
        rerank: str | None
        symbolic: bool
        committed: State = Field(description="what the manifest names now")
        serving: State | None = Field(description="the state the last request was answered "
                                      "from (a new commit is opened by the next request)")
        writer: str | None = Field(description="who holds the folder's write lock, if anyone")
        questions: str | None = Field(description="question vectors: current, stale, missing")

    class Error(BaseModel):
        detail: str

    class Unprocessable(BaseModel):
        detail: str | list[dict[str, Any]] = Field(
            description="what cannot be read in the question (a string: a refused formula, "
                        "unreadable LaTeX), or the fields that are wrong (pydantic's list)")

    return SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, type)})


def _loopback(host: str) -> bool:
    """Whether *host* (an address to listen on) is reachable from this machine only."""
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; "
     b"img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
     b"frame-ancestors 'none'")]


class _Guard:
    """ASGI middleware: refuses bodies over *limit* bytes (413), adds security headers, and
    turns an unexpected exception into a short 500 (its traceback goes to the log)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        from starlette.responses import JSONResponse

        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_guarded(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        length = dict(scope["headers"]).get(b"content-length")
        too_big = JSONResponse({"detail": f"request body larger than the limit of "
                                          f"{self.limit} bytes"}, status_code=413)
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_big(scope, receive, send_guarded)
        inner = receive
        if length is None:  # no length given (a chunked body): read it, up to the limit
            body, more = bytearray(), True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.limit:
                    return await too_big(scope, receive, send_guarded)
            replay = [{"type": "http.request", "body": bytes(body), "more_body": False}]

            async def inner() -> dict:
                return replay.pop() if replay else await receive()
        try:
            await self.app(scope, inner, send_guarded)
        except Exception:
            logger.exception("internal error answering %s %s", scope.get("method"),
                             scope.get("path"))
            if started:
                raise
            await JSONResponse({"detail": "internal error: this is a bug in mathmatch; the "
                                          "server's log has the details"},
                               status_code=500)(scope, receive, send_guarded)


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mathmatch API</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body data-page="docs"><main><h1>mathmatch API</h1>
<p>The OpenAPI schema: <a href="/openapi.json">/openapi.json</a>.</p>
<div id="docs">Loading...</div></main><script src="/static/app.js"></script></body></html>
"""


def create_app(index_dir: Path, cfg: ServeConfig) -> Any:
    """The FastAPI application serving *index_dir* (the pipeline loads at start-up, or on the
    first request when the application runs without its lifespan).

    Raises:
        ManifestError: *index_dir* is not an index.
        ImportError: FastAPI or latex2mathml missing (with the command that installs them).
    """
    try:
        import latex2mathml  # noqa: F401
        from fastapi import FastAPI, HTTPException, Query
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
        from fastapi.staticfiles import StaticFiles
    except ImportError as exc:
        raise ImportError(f"mathmatch serve needs {exc.name}: {INSTALL}") from exc
    from contextlib import asynccontextmanager

    from mathmatch.service import Service, Unavailable

    service = Service(index_dir, cfg)
    s = _schemas()

    @asynccontextmanager
    async def lifespan(app: Any):
        await service.call(service.current)
        yield
        await service.call(service.close)

    app = FastAPI(title="mathmatch", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, description="Match math questions to MathML answers.")
    app.state.service = service
    errors = {404: {"model": s.Error}, 413: {"model": s.Error}, 422: {"model": s.Unprocessable},
              503: {"model": s.Error}}

    def too_many(k: int) -> None:
        if k > cfg.k_max:
            raise RequestValidationError([{"type": "less_than_equal", "loc": ("body", "k"),
                                           "msg": f"Input should be less than or equal to "
                                                  f"{cfg.k_max}", "input": k,
                                           "ctx": {"le": cfg.k_max}}])

    @app.exception_handler(QueryError)
    async def query_error(request: Any, exc: QueryError) -> Any:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Any, exc: Unavailable) -> Any:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.post("/search", response_model=s.SearchResponse, responses=errors,
              summary="Rank the stored answers for a question")
    async def search(body: s.SearchRequest) -> Any:
        too_many(body.k)
        # The body comes written (mathmatch.respond: JSON of the SearchResponse model).
        return Response(await service.search_queued(body.question, body.k, body.mode),
                        media_type="application/json")

    @app.post("/duplicates", response_model=s.DuplicatesResponse, responses=errors,
              summary="Stored questions that may duplicate a question, with the evidence")
    async def duplicates(body: s.DuplicatesRequest) -> Any:
        too_many(body.k)
        return await service.call(service.duplicates, body.question, body.final, body.k)

    @app.get("/records/{record_id:path}", response_model=s.RecordResponse, responses=errors,
             summary="One stored record")
    async def record(record_id: str) -> Any:
        found = await service.call(service.record, record_id)
        if found is None:
            raise HTTPException(404, f"no record {record_id!r} in {service.index_dir}")
        return found

    @app.get("/healthz", response_model=s.Health, summary="The index and its state")
    async def healthz() -> Any:
        return service.health()

    def preview(latex: str | None, text: str | None) -> dict:
        if (latex is None) == (text is None):
            raise QueryError("give either latex (one formula) or text (a question)")
        given = latex if latex is not None else text
        if len(given.encode()) > cfg.max_body_bytes:
            raise HTTPException(413, f"{'latex' if latex is not None else 'text'} longer than "
                                     f"the limit of {cfg.max_body_bytes} bytes")
        if latex is not None:
            if not latex.strip():
                raise QueryError("latex is empty")
            mathml = latex_to_mathml(latex)
        else:
            mathml = prepare(text)
        return {"mathml": mathml, "html": display(mathml)[0]}

    @app.get("/preview", response_model=s.PreviewResponse, responses=errors,
             summary="MathML of LaTeX (or of a question with $LaTeX$), for the live preview")
    async def preview_get(latex: str | None = Query(None), text: str | None = Query(None)):
        return await asyncio.to_thread(preview, latex, text)

    @app.post("/preview", response_model=s.PreviewResponse, responses=errors,
              summary="MathML of LaTeX (or of a question with $LaTeX$), for the live preview")
    async def preview_post(body: s.PreviewRequest) -> Any:
        return await asyncio.to_thread(preview, body.latex, body.text)

    @app.get("/", include_in_schema=False)
    async def page() -> Any:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return HTMLResponse(_DOCS_PAGE)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(_Guard, limit=cfg.max_body_bytes)
    if _loopback(cfg.host):  # a page elsewhere that names a host resolving here is refused
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=[
            "127.0.0.1", "localhost", "[::1]", "::1", cfg.host, f"[{cfg.host}]"])
    return app


def serve(index_dir: Path, cfg: ServeConfig) -> None:
    """Serve *index_dir* with uvicorn until interrupted (``mathmatch serve``)."""
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(f"mathmatch serve needs uvicorn: {INSTALL}") from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    app = create_app(index_dir, cfg)
    service = app.state.service
    logger.info("loading %s", index_dir)
    service.executor.submit(service.current).result()  # a folder that cannot be served fails here
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    if not _loopback(cfg.host):
        logger.warning("listening on %s: anyone who can reach this machine can query %s "
                       "(there is no authentication)", cfg.host, index_dir)
    logger.info("serving %s at http://%s:%d/ (the API: http://%s:%d/docs)", index_dir, host,
                cfg.port, host, cfg.port)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_config=None, access_log=False,
                server_header=False)
