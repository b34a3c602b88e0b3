"""What only the built-in engine promises: verified loads, LRU eviction under a
memory budget, mixed-adapter batches, and streams that never block each other.

In-process tests drive ``serving.runtime.engine.Engine`` directly; HTTP tests
run ``python -m serving.runtime.server`` as a real process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from serving.runtime.engine import Engine, Event, SamplingParams
from serving.runtime.errors import AdapterVerificationError, InvalidRequest
from tests.serving.engine_support import (
    EngineProcess,
    TinyModelSet,
    digests,
    free_port,
    reference_generate,
    tiny_model_set,
)

pytestmark = [pytest.mark.slow, pytest.mark.no_database]

PROMPT = "The claims team reviews"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> TinyModelSet:
    return tiny_model_set(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def adapter_bytes(models: TinyModelSet) -> int:
    return (models.adapters["a0"] / "adapter_model.safetensors").stat().st_size


class Collector:
    """A request's sink: gathers events, signals the end."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.done = threading.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if event.kind != "delta":
            self.done.set()

    def text(self) -> str:
        assert self.done.wait(120), "no answer within 120 s"
        return "".join(e.text for e in self.events if e.kind == "delta")

    def end(self) -> Event:
        assert self.done.wait(120), "no answer within 120 s"
        return self.events[-1]


def _generate(engine: Engine, prompt_ids: list[int], adapter: str | None, max_tokens: int = 12) -> Collector:
    sink = Collector()
    engine.submit(prompt_ids, SamplingParams(max_tokens=max_tokens, temperature=0.0), adapter, sink)
    return sink


def _expected(models: TinyModelSet, prompt_ids: list[int], adapter: str | None, max_tokens: int = 12) -> str:
    tokens = reference_generate(models.base, prompt_ids, max_tokens, None if adapter is None else models.adapters[adapter])
    eos = models.tokenizer.eos_token_id
    return str(models.tokenizer.decode([t for t in tokens if t != eos], skip_special_tokens=True))


@pytest.fixture
def budget_of_two(models: TinyModelSet, adapter_bytes: int, tmp_path: Path) -> Iterator[Engine]:
    """An engine whose adapter budget holds two adapters, not three."""
    engine = Engine(
        models.base, served_model_name="tiny", memory_budget_mb=2.5 * adapter_bytes / 2**20,
        staging_root=tmp_path / "staging",
    )
    yield engine
    engine.shutdown()


def test_adapters_beyond_the_budget_evict_the_least_recently_used(models: TinyModelSet, budget_of_two: Engine) -> None:
    engine = budget_of_two
    ids = list(models.tokenizer(PROMPT)["input_ids"])
    engine.load_adapter("a0", str(models.adapters["a0"]), digests(models.adapters["a0"]))
    engine.load_adapter("a1", str(models.adapters["a1"]), digests(models.adapters["a1"]))
    _generate(engine, ids, "a0").text()  # a0 is now more recent than a1
    engine.load_adapter("a2", str(models.adapters["a2"]), digests(models.adapters["a2"]))
    state = engine.snapshot()
    assert {n: a["resident"] for n, a in state["adapters"].items()} == {"a0": True, "a1": False, "a2": True}
    assert state["resident_adapter_bytes"] <= state["memory_budget_bytes"]
    # The evicted adapter is still served: reloaded on demand (evicting a2 or a0), same output.
    assert _generate(engine, ids, "a1").text() == _expected(models, ids, "a1")
    state = engine.snapshot()
    assert state["adapters"]["a1"]["resident"] and state["adapter_evictions"] == 2
    assert state["resident_adapter_bytes"] <= state["memory_budget_bytes"]
    # With every adapter gone, the base (its LoRA layers empty) still answers like generate.
    for name in ("a0", "a1", "a2"):
        engine.unload_adapter(name)
    assert engine.model_names() == [("tiny", None)]
    assert _generate(engine, ids, None).text() == _expected(models, ids, None)


def test_requests_for_more_adapters_than_fit_wait_their_turn(
    models: TinyModelSet, adapter_bytes: int, tmp_path: Path
) -> None:
    engine = Engine(models.base, memory_budget_mb=1.5 * adapter_bytes / 2**20, staging_root=tmp_path / "staging")
    try:
        for name in ("a0", "a1"):
            engine.load_adapter(name, str(models.adapters[name]), digests(models.adapters[name]))
        ids = list(models.tokenizer(PROMPT)["input_ids"])
        # Submitted together: the second must not evict the first's adapter under it.
        sinks = [(name, _generate(engine, ids, name, 16)) for name in ("a0", "a1", "a0", "a1")]
        for name, sink in sinks:
            assert sink.text() == _expected(models, ids, name, 16)
        state = engine.snapshot()
        assert state["resident_adapter_bytes"] <= state["memory_budget_bytes"]
        assert state["adapter_evictions"] >= 1
    finally:
        engine.shutdown()


def test_a_staged_adapter_tampered_with_after_eviction_is_never_reloaded(
    models: TinyModelSet, budget_of_two: Engine
) -> None:
    engine = budget_of_two
    ids = list(models.tokenizer(PROMPT)["input_ids"])
    for name in ("a0", "a1", "a2"):  # a0 is evicted by a2
        engine.load_adapter(name, str(models.adapters[name]), digests(models.adapters[name]))
    staged = engine.adapters["a0"].staged_dir / "adapter_model.safetensors"
    staged.chmod(0o600)
    staged.write_bytes(staged.read_bytes()[:-8] + b"\x00" * 8)
    end = _generate(engine, ids, "a0").end()
    assert end.kind == "error"
    assert isinstance(end.error, AdapterVerificationError)
    assert "adapter_model.safetensors has sha256" in end.error.message
    assert not engine.snapshot()["adapters"]["a0"]["resident"]


def test_an_adapter_bigger_than_the_whole_budget_is_refused(models: TinyModelSet, adapter_bytes: int, tmp_path: Path) -> None:
    engine = Engine(models.base, memory_budget_mb=0.5 * adapter_bytes / 2**20, staging_root=tmp_path / "s")
    try:
        with pytest.raises(InvalidRequest, match="more than the engine's adapter memory budget"):
            engine.load_adapter("a0", str(models.adapters["a0"]), digests(models.adapters["a0"]))
        assert engine.model_names() == [(engine.served_model_name, None)]
    finally:
        engine.shutdown()


def test_requests_for_different_adapters_share_forward_passes(models: TinyModelSet, tmp_path: Path) -> None:
    engine = Engine(models.base, served_model_name="tiny", staging_root=tmp_path / "staging")
    try:
        for name in ("a0", "a1"):
            engine.load_adapter(name, str(models.adapters[name]), digests(models.adapters[name]))
        prompts = ["The claims team reviews", "Hello! How can I", "Numbers like 12 and"]
        jobs = [(p, a) for p in prompts for a in (None, "a0", "a1")]
        # Submitted together before the scheduler can run them one by one.
        sinks = [_generate(engine, list(models.tokenizer(p)["input_ids"]), a, 16) for p, a in jobs]
        texts = [s.text() for s in sinks]
        state = engine.snapshot()
        assert state["max_batch_seen"] >= 3
        assert state["mixed_adapter_steps"] >= 1
        assert state["forward_rows"] > state["steps"]  # rows shared passes
        for (prompt, adapter), text in zip(jobs, texts, strict=True):
            assert text == _expected(models, list(models.tokenizer(prompt)["input_ids"]), adapter, 16)
    finally:
        engine.shutdown()


def test_a_request_joining_a_running_batch_gets_the_same_greedy_output(models: TinyModelSet, tmp_path: Path) -> None:
    engine = Engine(models.base, staging_root=tmp_path / "staging")
    try:
        long_ids = list(models.tokenizer("A model trained on governed data answers")["input_ids"])
        short_ids = list(models.tokenizer("Hi")["input_ids"])
        first = _generate(engine, long_ids, None, 60)
        while not first.events:  # the first is decoding when the second arrives
            time.sleep(0.001)
        second = _generate(engine, short_ids, None, 20)
        assert second.text() == _expected(models, short_ids, None, 20)
        assert first.text() == _expected(models, long_ids, None, 60)
    finally:
        engine.shutdown()


@pytest.fixture(scope="module")
def server(models: TinyModelSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    work = tmp_path_factory.mktemp("builtin-server")
    engine = EngineProcess("builtin", models.base, "tiny", free_port(), work / "engine.log").start()
    yield engine
    engine.stop()


def test_loading_an_adapter_whose_digest_differs_is_refused_over_http(server: EngineProcess, models: TinyModelSet) -> None:
    expected = digests(models.adapters["a0"])
    expected["adapter_model.safetensors"] = "0" * 64
    response = httpx.post(
        server.url + "/v1/load_lora_adapter",
        json={"lora_name": "forged", "lora_path": str(models.adapters["a0"]), "sha256": expected},
        timeout=60,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "adapter_model.safetensors has sha256" in error["message"] and "refusing to load" in error["message"]
    assert error["param"] == "sha256"
    models_listed = httpx.get(server.url + "/v1/models", timeout=10).json()["data"]
    assert "forged" not in {m["id"] for m in models_listed}


def test_loading_an_adapter_without_digests_is_refused_over_http(server: EngineProcess, models: TinyModelSet) -> None:
    response = httpx.post(
        server.url + "/v1/load_lora_adapter",
        json={"lora_name": "unverified", "lora_path": str(models.adapters["a0"])},
        timeout=60,
    )
    assert response.status_code == 400
    assert "sha256" in response.json()["error"]["message"]


def test_bad_json_and_unsupported_options_are_a_400_naming_the_field(server: EngineProcess) -> None:
    bad_json = httpx.post(server.url + "/v1/completions", content=b"{not json", timeout=10)
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": "tiny", "prompt": "hi", "n": 2}, "n"),
        ({"model": "tiny", "prompt": "hi", "temperature": "hot"}, "temperature"),
        ({"model": "tiny", "prompt": "hi", "stop": [1]}, "stop"),
        ({"model": "tiny"}, "prompt"),
        ({"model": "tiny", "messages": []}, "messages"),
    ]
    for body, field in cases:
        path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
        response = httpx.post(server.url + path, json=body, timeout=10)
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == field


def test_concurrent_streams_interleave_and_never_block_health(server: EngineProcess) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    first_chunk: dict[int, float] = {}
    finished: dict[int, float] = {}

    def stream(index: int) -> None:
        for chunk in client.completions.create(
            model="tiny", prompt=f"Stream {index}:", max_tokens=120, temperature=0, stream=True
        ):
            if chunk.choices and chunk.choices[0].text and index not in first_chunk:
                first_chunk[index] = time.monotonic()
        finished[index] = time.monotonic()

    health_latencies: list[float] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(stream, i) for i in range(8)]
        while not all(f.done() for f in futures):
            started = time.monotonic()
            assert httpx.get(server.url + "/health", timeout=10).status_code == 200
            health_latencies.append(time.monotonic() - started)
            time.sleep(0.05)
        for future in futures:
            future.result()
    # Every stream had produced text before any stream finished: none waited for another.
    assert max(first_chunk.values()) < min(finished.values())
    assert len(health_latencies) >= 3
    assert max(health_latencies) < 1.0, health_latencies


def test_a_client_that_goes_away_frees_its_batch_row(server: EngineProcess) -> None:
    with httpx.stream(
        "POST", server.url + "/v1/completions", timeout=60,
        json={"model": "tiny", "prompt": "Leaving early", "max_tokens": 200, "temperature": 0, "stream": True},
    ) as response:
        for index, _line in enumerate(response.iter_lines()):
            if index >= 3:
                break
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(server.url + "/stats", timeout=10).json()["running"] == 0:
            return
        time.sleep(0.1)
    pytest.fail("the abandoned stream kept generating")


def test_a_prompt_of_token_ids_is_accepted(server: EngineProcess, models: TinyModelSet) -> None:
    ids = list(models.tokenizer(PROMPT)["input_ids"])
    by_text = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": PROMPT, "max_tokens": 8, "temperature": 0}, timeout=60)
    by_ids = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": ids, "max_tokens": 8, "temperature": 0}, timeout=60)
    assert by_ids.status_code == 200
    assert by_ids.json()["choices"][0]["text"] == by_text.json()["choices"][0]["text"]
    out_of_vocab = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": [10**6], "max_tokens": 2}, timeout=60)
    assert out_of_vocab.status_code == 400


def test_a_failing_forward_pass_ends_its_requests_and_the_engine_keeps_serving(
    models: TinyModelSet, tmp_path: Path
) -> None:
    engine = Engine(models.base, staging_root=tmp_path / "staging")
    try:
        ids = list(models.tokenizer(PROMPT)["input_ids"])
        real_model = engine.base_model
        calls = {"n": 0}

        def broken_once(*args: Any, **kwargs: Any) -> Any:  # fault injection: one pass fails
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("simulated out of memory")
            return real_model(*args, **kwargs)

        engine.base_model = broken_once
        failed = _generate(engine, ids, None).end()
        assert failed.kind == "error" and failed.error is not None
        assert failed.error.status == 500 and "simulated out of memory" in failed.error.message
        assert engine.healthy
        assert _generate(engine, ids, None).text() == _expected(models, ids, None)
    finally:
        engine.shutdown()
