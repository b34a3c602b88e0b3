"""Layouts, mixing and padding-free packing: where the loss falls, and that packing changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from customization.training.config import DataSource
from customization.training.data import (
    IGNORE_INDEX,
    DataError,
    Example,
    mix,
    pack,
    pad_batches,
    read_records,
    tokenize_records,
)
from customization.training.recipe import token_loss_sum

from .conftest import write_jsonl

pytestmark = pytest.mark.no_database


@pytest.fixture(scope="module")
def tokenizer(tiny_base: Path) -> Any:
    return AutoTokenizer.from_pretrained(str(tiny_base))


def _labelled_text(tokenizer: Any, example: Example) -> str:
    return tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX])


def test_prompt_completion_puts_the_loss_on_the_completion_only(tokenizer: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "Customer: Is my bike covered?", "completion": " Yes it is."}])
    (example,), dropped = tokenize_records(tokenizer, read_records(DataSource(str(path))), 256)
    assert dropped == 0
    assert _labelled_text(tokenizer, example) == " Yes it is." + tokenizer.eos_token
    prompt_length = len(example.input_ids) - example.loss_tokens
    assert all(label == IGNORE_INDEX for label in example.labels[:prompt_length])


def test_chat_puts_the_loss_on_assistant_turns_only(tokenizer: Any, tmp_path: Path) -> None:
    record = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there."},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."},
    ]}
    path = write_jsonl(tmp_path / "chat.jsonl", [record])
    (example,), _ = tokenize_records(tokenizer, read_records(DataSource(str(path))), 256)
    assert tokenizer.decode(list(example.input_ids)) == tokenizer.apply_chat_template(record["messages"], tokenize=False)
    assert _labelled_text(tokenizer, example) == "Hi there.<|end|>\nGoodbye.<|end|>\n"


def test_plain_text_learns_every_token_but_the_first(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("The storm broke three tiles.\n\nThe claim was paid.\n")
    examples, _ = tokenize_records(tokenizer, read_records(DataSource(str(path))), 256)
    assert len(examples) == 2
    for example in examples:
        assert example.labels[0] == IGNORE_INDEX
        assert list(example.labels[1:]) == list(example.input_ids[1:])


def test_a_prompt_longer_than_the_limit_is_dropped_not_trained_on(tokenizer: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "word " * 200, "completion": " answer"}])
    examples, dropped = tokenize_records(tokenizer, read_records(DataSource(str(path))), 32)
    assert (examples, dropped) == ([], 1)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "line 2: invalid JSON"),
        ('{"prompt": "a", "completion": 3}', "line 2 field 'completion'"),
        ('{"messages": [{"role": "robot", "content": "x"}]}', "line 2 field 'messages[0].role'"),
        ('{"messages": [{"role": "user", "content": "x"}]}', "line 2 field 'messages': has no assistant turn"),
        ('{"body": "x"}', "line 2: cannot tell the layout"),
    ],
)
def test_a_bad_record_is_refused_naming_file_line_and_field(tmp_path: Path, line: str, needle: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n" + line + "\n")  # line 1 is blank (skipped), the record is on line 2
    with pytest.raises(DataError) as error:
        read_records(DataSource(str(path), layout="auto"))
    assert str(error.value).startswith(str(path))
    assert needle in str(error.value)


def _examples(prefix: int, count: int) -> list[Example]:
    return [Example((prefix, i), (IGNORE_INDEX, i), prefix - 1) for i in range(count)]


def test_mixing_is_deterministic_by_seed_and_follows_the_weights() -> None:
    sources = [_examples(1, 100), _examples(2, 100)]
    first = mix(sources, [3.0, 1.0], seed=7)
    assert first == mix(sources, [3.0, 1.0], seed=7)
    assert first != mix(sources, [3.0, 1.0], seed=8)
    assert len(first) == 200
    assert sum(1 for e in first if e.source == 0) == 150
    assert sum(1 for e in first if e.source == 1) == 50
    # an up-weighted small source repeats, walking every example before any repeats
    small = mix([_examples(1, 10), _examples(2, 90)], [1.0, 1.0], seed=0)
    from_small = [e for e in small if e.source == 0]
    assert len(from_small) == 50 and len(set(from_small)) == 10


def test_packing_adds_no_padding_and_restarts_positions_per_example() -> None:
    examples = [Example(tuple(range(n)), (IGNORE_INDEX,) + tuple(range(1, n)), 0) for n in (5, 3, 7, 2, 9)]
    rows = pack(examples, batch_tokens=12)
    assert [row.real_tokens for row in rows] == [8, 9, 9]
    assert sum(row.input_ids.numel() for row in rows) == sum(len(e.input_ids) for e in examples)
    assert rows[0].position_ids is not None
    assert rows[0].position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2]]
    assert rows[0].labels[0, 5].item() == IGNORE_INDEX  # never predict across the boundary
    assert all(row.attention_mask is None for row in rows)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_loss_equals_the_loss_of_each_example_run_alone(
    tiny_base: Path, tokenizer: Any, support_data: Path, attention: str
) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), attn_implementation=attention).eval()
    examples, _ = tokenize_records(tokenizer, read_records(DataSource(str(support_data))), 256)
    examples = examples[:12]
    (row,) = pack(examples, batch_tokens=sum(len(e.input_ids) for e in examples))
    with torch.no_grad():
        packed_loss = float(token_loss_sum(model, row, torch.device("cpu"), torch.no_grad))
        separate = sum(float(token_loss_sum(model, b, torch.device("cpu"), torch.no_grad)) for b in pack_each(examples))
        # without position restarts (one long sequence) attention crosses examples: the loss differs
        row.position_ids = None
        crossed = float(token_loss_sum(model, row, torch.device("cpu"), torch.no_grad))
    assert packed_loss == pytest.approx(separate, rel=1e-5)
    assert abs(crossed - separate) / separate > 1e-3


def pack_each(examples: list[Example]) -> list[Any]:
    """One micro-batch per example (each run alone)."""
    return [pack([e], len(e.input_ids))[0] for e in examples]


def test_padded_batches_give_the_same_loss_as_packed_rows(tiny_base: Path, tokenizer: Any, support_data: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(tiny_base)).eval()
    examples, _ = tokenize_records(tokenizer, read_records(DataSource(str(support_data))), 256)
    padded = pad_batches(examples, 8, tokenizer.pad_token_id)
    packed = pack(examples, 512)
    assert sum(b.real_tokens for b in padded) == sum(b.real_tokens for b in packed)
    assert sum(b.input_ids.numel() for b in padded) > sum(b.real_tokens for b in padded)
    with torch.no_grad():
        padded_loss = sum(float(token_loss_sum(model, b, torch.device("cpu"), torch.no_grad)) for b in padded)
        packed_loss = sum(float(token_loss_sum(model, b, torch.device("cpu"), torch.no_grad)) for b in packed)
    assert packed_loss == pytest.approx(padded_loss, rel=1e-4)
