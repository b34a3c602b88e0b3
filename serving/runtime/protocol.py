"""The OpenAI request and response shapes the built-in engine speaks (as vLLM does).

Parsing validates every parameter and raises ``InvalidRequest`` naming the
field; an unsupported option asked for with a non-default value is refused
rather than silently ignored.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from serving.runtime.engine import Engine, SamplingParams
from serving.runtime.errors import InvalidRequest

COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's (and vLLM's) default for /v1/completions

# Options the engine does not implement: refused when asked for with anything but the default.
_UNSUPPORTED_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "best_of": (None, 1),
    "echo": (None, False),
    "logprobs": (None, False, 0),
    "top_logprobs": (None, 0),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "suffix": (None, ""),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "response_format": (None, {"type": "text"}),
}


@dataclass
class GenerationRequest:
    """A parsed request: the tokens to continue, how, with which adapter, and how to answer."""

    kind: str  # "completion" | "chat"
    model: str
    adapter: str | None
    prompt_ids: list[int]
    params: SamplingParams
    stream: bool
    include_usage: bool


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float, *, low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{name}: expected a number, got {value!r}", param=name)
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise InvalidRequest(f"{name}: {value!r} is outside {bracket}{low}, {high}]", param=name)
    return float(value)


def _max_tokens(body: dict[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"{name}: expected an integer, got {value!r}", param=name)
        if value < 1:
            raise InvalidRequest(f"{name}: must be at least 1, got {value}", param=name)
        return value
    return None


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidRequest("stop: expected a string or a list of strings", param="stop")
    if any(s == "" for s in value):
        raise InvalidRequest("stop: stop strings must not be empty", param="stop")
    return tuple(value)


def _seed(body: dict[str, Any]) -> int | None:
    value = body.get("seed")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"seed: expected an integer, got {value!r}", param="seed")
    return value % (2**63)


def _check_unsupported(body: dict[str, Any]) -> None:
    for name, defaults in _UNSUPPORTED_DEFAULTS.items():
        if name in body and body[name] not in defaults:
            raise InvalidRequest(f"{name}: {body[name]!r} is not supported by this engine", param=name)


def _stream(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest(f"stream: expected true or false, got {stream!r}", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("stream_options: expected an object", param="stream_options")
    include_usage = (options or {}).get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise InvalidRequest("stream_options.include_usage: expected true or false", param="stream_options")
    # As OpenAI and vLLM do: a stream ends with a usage chunk (empty choices) only
    # when asked, so clients reading choices[0] of every chunk keep working; the
    # gateway asks for it to count tokens.
    return stream, include_usage


def _prompt_ids(engine: Engine, prompt: Any) -> list[int]:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str):
        ids: list[int] = engine.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        return list(ids)
    vocab = len(engine.tokenizer)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        bad = [t for t in prompt if t < 0 or t >= max(vocab, engine.config.vocab_size)]
        if bad:
            raise InvalidRequest(f"prompt: token ids {bad[:5]} are outside the vocabulary", param="prompt")
        return list(prompt)
    raise InvalidRequest(
        "prompt: expected a string, a list of token ids, or a list holding one of those", param="prompt"
    )


def _messages_text(engine: Engine, messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: expected a non-empty list of messages", param="messages")
    cleaned: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages[{index}]: expected an object with a role", param="messages")
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise InvalidRequest(
                        f"messages[{index}].content: only text parts are supported", param="messages"
                    )
                parts.append(part["text"])
            content = "".join(parts)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise InvalidRequest(f"messages[{index}].content: expected a string", param="messages")
        cleaned.append({"role": message["role"], "content": content})
    if not getattr(engine.tokenizer, "chat_template", None):
        raise InvalidRequest("this model has no chat template; use /v1/completions", param="messages")
    try:
        text = engine.tokenizer.apply_chat_template(cleaned, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # a template that raises (e.g. on a role it does not know)
        raise InvalidRequest(f"messages: the chat template refused them: {exc}", param="messages") from exc
    return str(text)


def parse_request(engine: Engine, body: Any, kind: str) -> GenerationRequest:
    """Validate a /v1/completions (kind "completion") or /v1/chat/completions ("chat") body."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    _check_unsupported(body)
    adapter = engine.resolve_model(body.get("model"))
    if kind == "chat":
        text = _messages_text(engine, body.get("messages"))
        prompt_ids = list(engine.tokenizer(text, add_special_tokens=False)["input_ids"])
        requested = _max_tokens(body, ("max_completion_tokens", "max_tokens"))
    else:
        if "prompt" not in body:
            raise InvalidRequest("prompt: required", param="prompt")
        prompt_ids = _prompt_ids(engine, body["prompt"])
        requested = _max_tokens(body, ("max_tokens",))
        if requested is None:
            requested = COMPLETION_DEFAULT_MAX_TOKENS
    params = SamplingParams(
        max_tokens=engine.check_context(len(prompt_ids), requested),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True),
        stop=_stop(body),
        seed=_seed(body),
    )
    stream, include_usage = _stream(body)
    return GenerationRequest(
        kind=kind,
        model=str(body["model"]),
        adapter=adapter,
        prompt_ids=prompt_ids,
        params=params,
        stream=stream,
        include_usage=include_usage,
    )


def new_id(kind: str) -> str:
    """An OpenAI-style response id."""
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The usage object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def full_response(
    request: GenerationRequest, response_id: str, text: str, finish_reason: str | None, usage_: dict[str, int]
) -> dict[str, Any]:
    """A non-streaming completion or chat completion."""
    created = int(time.time())
    if request.kind == "chat":
        return {
            "id": response_id,
            "object": "chat.completion",
            "created": created,
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage_,
        }
    return {
        "id": response_id,
        "object": "text_completion",
        "created": created,
        "model": request.model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage_,
    }


def chunk(
    request: GenerationRequest,
    response_id: str,
    *,
    text: str | None = None,
    role: bool = False,
    finish_reason: str | None = None,
    usage_: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One server-sent chunk; with ``usage_`` it is the final, choice-less usage chunk."""
    created = int(time.time())
    if request.kind == "chat":
        choices: list[dict[str, Any]] = []
        if usage_ is None:
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        body: dict[str, Any] = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "choices": choices,
        }
    else:
        choices = []
        if usage_ is None:
            choices = [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}]
        body = {
            "id": response_id,
            "object": "text_completion",
            "created": created,
            "model": request.model,
            "choices": choices,
        }
    if usage_ is not None:
        body["usage"] = usage_
    return body
