"""The built-in engine's HTTP server: the OpenAI protocol as vLLM serves it.

    python -m serving.runtime.server --base DIR --port P [--memory-budget-mb N] [--max-batch 16]

An asyncio server (uvicorn + starlette): every request is a coroutine that
waits on its own queue, fed by the engine's scheduler thread, so concurrent
streams never block each other or the health check; generation never runs on
the event loop. Routes: GET /health, GET /v1/models, POST /v1/completions,
POST /v1/chat/completions, POST /v1/load_lora_adapter {"lora_name",
"lora_path", "sha256": {file: digest}}, POST /v1/unload_lora_adapter
{"lora_name"}, GET /stats (counters). Errors use OpenAI's error body.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from serving.runtime import protocol
from serving.runtime.engine import Engine, Event
from serving.runtime.errors import EngineError, EngineUnavailable, InvalidRequest

logger = logging.getLogger(__name__)


def error_response(error: EngineError) -> JSONResponse:
    """An OpenAI-style error body with the error's status."""
    return JSONResponse(error.body(), status_code=error.status)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc


class _Stream:
    """Carries one request's events from the scheduler thread onto the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def sink(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


def _sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def build_app(engine: Engine) -> Starlette:
    """The ASGI app serving ``engine``."""

    async def health(request: Request) -> Response:
        if not engine.healthy:
            return error_response(EngineUnavailable("the engine's scheduler is not running"))
        return PlainTextResponse("")

    async def models(request: Request) -> Response:
        data = []
        for name, record in engine.model_names():
            entry: dict[str, Any] = {
                "id": name,
                "object": "model",
                "created": engine.created if record is None else record.created,
                "owned_by": "pedigree",
                "root": engine.base_dir if record is None else record.source_path,
                "parent": None if record is None else engine.served_model_name,
                "max_model_len": engine.max_model_len,
            }
            data.append(entry)
        return JSONResponse({"object": "list", "data": data})

    async def stats(request: Request) -> Response:
        return JSONResponse(engine.snapshot())

    async def generate(request: Request, kind: str) -> Response:
        try:
            body = await _json_body(request)
            parsed = protocol.parse_request(engine, body, kind)
            stream = _Stream(asyncio.get_running_loop())
            seq = engine.submit(parsed.prompt_ids, parsed.params, parsed.adapter, stream.sink)
        except EngineError as exc:
            return error_response(exc)
        response_id = protocol.new_id(kind)
        if parsed.stream:
            return StreamingResponse(
                _stream_events(parsed, response_id, stream, seq),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        pieces: list[str] = []
        try:
            while True:
                event = await stream.queue.get()
                if event.kind == "delta":
                    pieces.append(event.text)
                elif event.kind == "error":
                    assert event.error is not None
                    return error_response(event.error)
                else:
                    usage = protocol.usage(event.prompt_tokens, event.completion_tokens)
                    return JSONResponse(
                        protocol.full_response(parsed, response_id, "".join(pieces), event.finish_reason, usage)
                    )
        finally:
            engine.cancel(seq)  # no-op when it finished; frees the row when the client left

    async def _stream_events(
        parsed: protocol.GenerationRequest, response_id: str, stream: _Stream, seq: Any
    ) -> AsyncIterator[bytes]:
        try:
            if parsed.kind == "chat":
                yield _sse(protocol.chunk(parsed, response_id, text="", role=True))
            while True:
                event = await stream.queue.get()
                if event.kind == "delta":
                    yield _sse(protocol.chunk(parsed, response_id, text=event.text))
                elif event.kind == "error":
                    assert event.error is not None
                    yield _sse(event.error.body())
                    break
                else:
                    yield _sse(
                        protocol.chunk(
                            parsed,
                            response_id,
                            text="" if parsed.kind == "completion" else None,
                            finish_reason=event.finish_reason,
                        )
                    )
                    if parsed.include_usage:
                        usage = protocol.usage(event.prompt_tokens, event.completion_tokens)
                        yield _sse(protocol.chunk(parsed, response_id, usage_=usage))
                    break
            yield b"data: [DONE]\n\n"
        finally:
            engine.cancel(seq)

    async def completions(request: Request) -> Response:
        return await generate(request, "completion")

    async def chat_completions(request: Request) -> Response:
        return await generate(request, "chat")

    async def load_lora_adapter(request: Request) -> Response:
        try:
            body = await _json_body(request)
            if not isinstance(body, dict):
                raise InvalidRequest("the request body must be a JSON object")
            name, path = body.get("lora_name"), body.get("lora_path")
            await asyncio.to_thread(engine.load_adapter, name, path, body.get("sha256"))  # type: ignore[arg-type]
        except EngineError as exc:
            return error_response(exc)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    async def unload_lora_adapter(request: Request) -> Response:
        try:
            body = await _json_body(request)
            if not isinstance(body, dict):
                raise InvalidRequest("the request body must be a JSON object")
            name = body.get("lora_name")
            await asyncio.to_thread(engine.unload_adapter, name)  # type: ignore[arg-type]
        except EngineError as exc:
            return error_response(exc)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    async def on_error(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error serving %s", request.url.path, exc_info=exc)
        return JSONResponse(
            {"error": {"message": "internal engine error", "type": "InternalServerError", "param": None, "code": 500}},
            status_code=500,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(engine.shutdown)

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/load_lora_adapter", load_lora_adapter, methods=["POST"]),
            Route("/v1/unload_lora_adapter", unload_lora_adapter, methods=["POST"]),
        ],
        exception_handlers={Exception: on_error},
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, load the base model, serve until interrupted."""
    parser = argparse.ArgumentParser(description="Pedigree's built-in OpenAI-compatible engine")
    parser.add_argument("--base", required=True, help="folder of the base model (save_pretrained)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--served-model-name", default=None, help="the base's model id (default: --base)")
    parser.add_argument("--memory-budget-mb", type=float, default=512.0, help="resident adapter weights, MiB")
    parser.add_argument("--max-batch", type=int, default=16, help="most sequences in one forward pass")
    parser.add_argument("--max-model-len", type=int, default=None, help="context length (default: the model's)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch intra-op threads (default: the usable cores less one, at least 1)",
    )
    parser.add_argument("--staging-dir", default=None, help="where verified adapter copies live")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    if args.max_batch < 1:
        parser.error("--max-batch must be at least 1")
    # Like vLLM's CPU worker, leave a core to the event loop and the rest of the
    # machine: on a busy 2-core machine, 2 OpenMP threads ran 10x slower than 1.
    torch.set_num_threads(args.threads or max(1, len(os.sched_getaffinity(0)) - 1))
    logging.basicConfig(level=args.log_level.upper())

    import uvicorn

    engine = Engine(
        args.base,
        served_model_name=args.served_model_name,
        memory_budget_mb=args.memory_budget_mb,
        max_batch=args.max_batch,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        staging_root=args.staging_dir,
    )
    uvicorn.run(build_app(engine), host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
