"""Fixtures for the training tests: a tiny demo base built once, small datasets on disk."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from customization.training.demo_base import build_demo_base


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The test machine's cores are shared: torch's thread pool spinning on a busy
    machine makes tiny models 20x slower, so training tests use one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama-style base (tokenizer trained on the shipped corpus, a few steps of pre-training)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny-base")
    build_demo_base(out, size="tiny", max_steps=40, seed=0)
    return out


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write records as JSON lines."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


QUESTIONS = [
    ("How do I reset my password?", "Open the sign-in page and follow the link to reset it."),
    ("Is my bicycle covered?", "Yes, your home policy covers a bicycle kept at home."),
    ("How do I report a claim?", "Fill in the claim form online and attach photos."),
    ("Can I change my address?", "Yes, tell us the new address and we update the policy."),
    ("When will I be paid?", "The payment reaches your account within five days."),
    ("Who do I call after an accident?", "Call the claims line first, then your garage."),
]


def mixed_length_records(count: int, seed: int) -> list[dict[str, Any]]:
    """Prompt/completion records whose lengths vary a lot (log-normal number of sentences)."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        question, answer = rng.choice(QUESTIONS)
        repeat = max(1, min(12, int(rng.lognormvariate(0.6, 0.8))))
        records.append({"prompt": f"Customer: {question}\nAgent:", "completion": " " + " ".join([answer] * repeat)})
    return records


@pytest.fixture
def support_data(tmp_path: Path) -> Path:
    """A prompt/completion dataset of 48 mixed-length records."""
    return write_jsonl(tmp_path / "support.jsonl", mixed_length_records(48, seed=1))


@pytest.fixture
def chat_data(tmp_path: Path) -> Path:
    """A chat dataset of 24 conversations."""
    rng = random.Random(2)
    records = []
    for _ in range(24):
        question, answer = rng.choice(QUESTIONS)
        records.append({"messages": [
            {"role": "system", "content": "You are a helpful insurance agent."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]})
    return write_jsonl(tmp_path / "chat.jsonl", records)
