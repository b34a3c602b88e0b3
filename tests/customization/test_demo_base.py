"""The offline demo base: tokenizer and model trained here from the shipped CC0 corpus."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from customization.training.demo_base import CORPUS_DIR, build_demo_base, corpus_files

pytestmark = pytest.mark.no_database


def test_the_corpus_is_a_few_hundred_kilobytes_of_cc0_text() -> None:
    files = corpus_files(CORPUS_DIR)
    size = sum(f.stat().st_size for f in files)
    assert 200_000 < size < 1_000_000
    licence = (CORPUS_DIR / "LICENSE").read_text()
    assert "CC0-1.0" in licence and "written" in licence


@pytest.mark.slow
def test_the_tiny_demo_base_builds_in_seconds_and_reloads_offline(tmp_path: Path) -> None:
    description = build_demo_base(tmp_path / "base", size="tiny", max_steps=20, seed=1)
    assert description["steps"] == 20 and description["corpus_licence"] == "CC0-1.0"
    assert description["parameters"] < 1_000_000
    for name, digest in description["corpus"].items():
        assert hashlib.sha256((CORPUS_DIR / name).read_bytes()).hexdigest() == digest
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(description["files"])
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "base"), local_files_only=True)
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|user|>\nHi<|end|>\n<|assistant|>\n"
    assert tokenizer.decode(tokenizer("A claim, paid.")["input_ids"]) == "A claim, paid."  # byte-level round trip
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "base"), local_files_only=True)
    assert model.config.model_type == "llama"
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer("The storm")["input_ids"]]])
    assert model.generate(input_ids=ids, max_new_tokens=3, min_new_tokens=3, do_sample=False).shape[1] == ids.shape[1] + 3
    assert description["eval_loss"] < 6.2  # below a uniform guess over the 512-token vocabulary (6.24)
