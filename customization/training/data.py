"""From dataset files to micro-batches: layouts, mixing, padding-free packing.

Layouts (one record per JSONL line, or per non-blank line of a ``.txt`` file):

- ``text``: ``{"text": ...}``: loss on every token;
- ``prompt_completion``: ``{"prompt": ..., "completion": ...}``: loss on the
  completion only;
- ``chat``: ``{"messages": [{"role", "content"}, ...]}`` rendered through the
  tokenizer's chat template: loss on the assistant turns only.

`Example.labels[i]` is the target of position i (``-100``: no loss); the loss
compares the logits at i-1 with labels[i], so an example's first label is
always -100 and nothing is ever predicted across two examples.

Packing (the default) concatenates examples into one padding-free row per
micro-batch with ``position_ids`` restarting at 0 for each example; with no
attention mask, transformers (5.x, sdpa and eager) derives a block-diagonal
causal mask from those restarts (``masking_utils.find_packed_sequence_indices``),
so attention never crosses examples and a packed row's loss equals the loss of
its examples run one by one. The padded alternative pads each batch to its
longest example (with an attention mask); it exists for comparison.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from customization.training.config import DataSource

IGNORE_INDEX = -100


class DataError(ValueError):
    """A dataset record cannot be used; the message names the file, line and field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str) -> None:
        where = path + (f" line {line}" if line is not None else "")
        where += f" field {field!r}" if field else ""
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.field = field


@dataclass(frozen=True)
class Record:
    """One parsed record: its layout, its content, and where it came from."""

    layout: str
    content: dict[str, Any]
    path: str
    line: int


@dataclass(frozen=True)
class Example:
    """One tokenised record: token ids and their targets (-100 where no loss)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    source: int = 0  # index of its DataSource

    @property
    def loss_tokens(self) -> int:
        """How many positions carry a loss."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass
class MicroBatch:
    """What one forward pass sees. `loss_tokens` and `real_tokens` exclude padding."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor | None
    attention_mask: torch.Tensor | None
    real_tokens: int
    loss_tokens: int
    examples: int

    def model_inputs(self, device: torch.device | str) -> dict[str, Any]:
        """Keyword arguments for the model's forward (no labels: the recipe computes the loss)."""
        inputs: dict[str, Any] = {"input_ids": self.input_ids.to(device), "use_cache": False}
        if self.position_ids is not None:
            inputs["position_ids"] = self.position_ids.to(device)
        if self.attention_mask is not None:
            inputs["attention_mask"] = self.attention_mask.to(device)
        return inputs


# --- reading ---------------------------------------------------------------------


def detect_layout(content: dict[str, Any]) -> str | None:
    """The layout a record's keys imply, or None."""
    if "messages" in content:
        return "chat"
    if "prompt" in content and "completion" in content:
        return "prompt_completion"
    if "text" in content:
        return "text"
    return None


def read_records(source: DataSource) -> list[Record]:
    """Read and check every record of a source; the first bad one raises `DataError`."""
    path = Path(source.path)
    if not path.is_file():
        raise DataError(source.path, None, None, "file not found")
    records: list[Record] = []
    layout = source.layout
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if path.suffix == ".txt":
                content: Any = {"text": line.rstrip("\n")}
            else:
                try:
                    content = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(source.path, line_number, None, f"invalid JSON: {error.msg}") from error
                if not isinstance(content, dict):
                    raise DataError(source.path, line_number, None, "a record must be a JSON object")
            if layout == "auto":
                detected = detect_layout(content)
                if detected is None:
                    raise DataError(
                        source.path, line_number, None,
                        'cannot tell the layout: expected "text", "prompt"+"completion" or "messages"',
                    )
                layout = detected
            _check_record(content, layout, source.path, line_number)
            records.append(Record(layout, content, source.path, line_number))
    if not records:
        raise DataError(source.path, None, None, "no records")
    return records


def _check_record(content: dict[str, Any], layout: str, path: str, line: int) -> None:
    if layout == "text":
        if not isinstance(content.get("text"), str) or not content["text"]:
            raise DataError(path, line, "text", "must be a non-empty string")
    elif layout == "prompt_completion":
        for key in ("prompt", "completion"):
            if not isinstance(content.get(key), str):
                raise DataError(path, line, key, "must be a string")
        if not content["completion"]:
            raise DataError(path, line, "completion", "must not be empty")
    elif layout == "chat":
        messages = content.get("messages")
        if not isinstance(messages, list) or not messages:
            raise DataError(path, line, "messages", "must be a non-empty list")
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            if not isinstance(message, dict):
                raise DataError(path, line, where, "must be an object with role and content")
            if message.get("role") not in ("system", "user", "assistant"):
                raise DataError(path, line, f"{where}.role", "must be system, user or assistant")
            if not isinstance(message.get("content"), str):
                raise DataError(path, line, f"{where}.content", "must be a string")
        if not any(m["role"] == "assistant" for m in messages):
            raise DataError(path, line, "messages", "has no assistant turn to learn from")


# --- tokenising ------------------------------------------------------------------


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_record(tokenizer: Any, record: Record, max_seq_len: int, source: int = 0) -> Example | None:
    """Turn a record into an `Example`, truncated to `max_seq_len`.

    Returns None when nothing is left to learn from after truncation (a
    prompt longer than the limit, for instance).
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    content = record.content
    if record.layout == "text":
        ids = bos + _encode(tokenizer, content["text"]) + eos
        labels = list(ids)
    elif record.layout == "prompt_completion":
        prompt = bos + _encode(tokenizer, content["prompt"])
        completion = _encode(tokenizer, content["completion"]) + eos
        ids = prompt + completion
        labels = [IGNORE_INDEX] * len(prompt) + completion
    else:
        ids, labels = _tokenize_chat(tokenizer, record)
    ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    if labels:
        labels[0] = IGNORE_INDEX  # nothing predicts an example's first token
    example = Example(tuple(ids), tuple(labels), source)
    return example if example.loss_tokens > 0 else None


def _tokenize_chat(tokenizer: Any, record: Record) -> tuple[list[int], list[int]]:
    """Render turn by turn; the tokens an assistant turn adds (after its header) carry the loss."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(record.path, record.line, "messages", "the base model's tokenizer has no chat template")
    messages = record.content["messages"]
    ids: list[int] = []
    labels: list[int] = []
    rendered = ""
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            header = tokenizer.apply_chat_template(
                messages[:index], tokenize=False, add_generation_prompt=True
            )
            if not header.startswith(rendered):
                raise DataError(record.path, record.line, f"messages[{index}]", "the chat template does not render turns as a prefix")
            piece = _encode(tokenizer, header[len(rendered):])
            ids += piece
            labels += [IGNORE_INDEX] * len(piece)
            rendered = header
        full = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False)
        if not full.startswith(rendered):
            raise DataError(record.path, record.line, f"messages[{index}]", "the chat template does not render turns as a prefix")
        piece = _encode(tokenizer, full[len(rendered):])
        ids += piece
        labels += piece if message["role"] == "assistant" else [IGNORE_INDEX] * len(piece)
        rendered = full
    return ids, labels


def tokenize_records(
    tokenizer: Any, records: Sequence[Record], max_seq_len: int, source: int = 0
) -> tuple[list[Example], int]:
    """Tokenise records; returns the examples and how many were dropped (nothing to learn)."""
    examples: list[Example] = []
    dropped = 0
    for record in records:
        example = tokenize_record(tokenizer, record, max_seq_len, source)
        if example is None:
            dropped += 1
        else:
            examples.append(example)
    return examples, dropped


# --- splitting and mixing --------------------------------------------------------


def split_eval(records: list[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Hold out `fraction` of the records (at least one when there are two or more), by seed."""
    if fraction <= 0 or len(records) < 2:
        return list(records), []
    order = list(range(len(records)))
    random.Random(f"eval-split:{seed}").shuffle(order)
    held = min(len(records) - 1, max(1, round(fraction * len(records))))
    held_out = set(order[:held])
    train = [r for i, r in enumerate(records) if i not in held_out]
    evaluation = [r for i, r in enumerate(records) if i in held_out]
    return train, evaluation


def mix(sources: Sequence[Sequence[Example]], weights: Sequence[float], seed: int) -> list[Example]:
    """One epoch's worth of examples drawn from several sources by weight, in a seeded order.

    The epoch holds as many examples as all the sources together; source i
    gives round(total x w_i / sum(w)) of them, walking seeded permutations of
    its examples (repeating a source only when its share exceeds its size).
    The same inputs and seed always give the same list.
    """
    if len(sources) != len(weights):
        raise ValueError("one weight per source")
    total = sum(len(s) for s in sources)
    weight_sum = float(sum(weights))
    rng = random.Random(f"mix:{seed}")
    mixed: list[Example] = []
    for index, (examples, weight) in enumerate(zip(sources, weights, strict=True)):
        if not examples:
            continue
        count = max(1, round(total * weight / weight_sum))
        drawn: list[Example] = []
        while len(drawn) < count:
            order = list(range(len(examples)))
            random.Random(f"mix:{seed}:{index}:{len(drawn)}").shuffle(order)
            drawn += [examples[i] for i in order[: count - len(drawn)]]
        mixed += drawn
    rng.shuffle(mixed)
    return mixed


# --- batching --------------------------------------------------------------------


def pack(examples: Sequence[Example], batch_tokens: int) -> list[MicroBatch]:
    """Padding-free packing: examples, in order, concatenated into rows of at most `batch_tokens`.

    Each row is one micro-batch of shape [1, n] with position_ids restarting
    per example; no padding token is ever added.
    """
    batches: list[MicroBatch] = []
    current: list[Example] = []
    length = 0
    for example in examples:
        if len(example.input_ids) > batch_tokens:
            raise ValueError(f"an example of {len(example.input_ids)} tokens exceeds batch_tokens {batch_tokens}")
        if current and length + len(example.input_ids) > batch_tokens:
            batches.append(_packed_row(current))
            current, length = [], 0
        current.append(example)
        length += len(example.input_ids)
    if current:
        batches.append(_packed_row(current))
    return batches


def _packed_row(examples: Sequence[Example]) -> MicroBatch:
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in examples:
        ids += example.input_ids
        labels += example.labels
        positions += range(len(example.input_ids))
    return MicroBatch(
        input_ids=torch.tensor([ids], dtype=torch.long),
        labels=torch.tensor([labels], dtype=torch.long),
        position_ids=torch.tensor([positions], dtype=torch.long),
        attention_mask=None,
        real_tokens=len(ids),
        loss_tokens=sum(e.loss_tokens for e in examples),
        examples=len(examples),
    )


def pad_batches(examples: Sequence[Example], batch_size: int, pad_token_id: int) -> list[MicroBatch]:
    """The padded alternative: `batch_size` examples per micro-batch, right-padded to the longest."""
    batches: list[MicroBatch] = []
    for start in range(0, len(examples), batch_size):
        group = examples[start : start + batch_size]
        width = max(len(e.input_ids) for e in group)
        ids = torch.full((len(group), width), pad_token_id, dtype=torch.long)
        labels = torch.full((len(group), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for row, example in enumerate(group):
            n = len(example.input_ids)
            ids[row, :n] = torch.tensor(example.input_ids)
            labels[row, :n] = torch.tensor(example.labels)
            mask[row, :n] = 1
        batches.append(
            MicroBatch(
                input_ids=ids,
                labels=labels,
                position_ids=None,
                attention_mask=mask,
                real_tokens=int(mask.sum()),
                loss_tokens=sum(e.loss_tokens for e in group),
                examples=len(group),
            )
        )
    return batches


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    """The order micro-batches are visited in during `epoch` (seeded, different each epoch)."""
    order = list(range(count))
    random.Random(f"epoch:{seed}:{epoch}").shuffle(order)
    return order


def steps_per_epoch(micro_batches: int, gradient_accumulation: int, world_size: int) -> int:
    """Optimizer steps in one pass over the micro-batches (the last step may be partial)."""
    return max(1, math.ceil(micro_batches / (gradient_accumulation * world_size)))
