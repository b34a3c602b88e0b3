"""The offline demo base model: a tokenizer and a small Llama trained here, from nothing.

`build_demo_base` trains a byte-level BPE tokenizer with `tokenizers` on the
corpus shipped in ``customization/data/corpus`` (CC0, written for the project),
builds a small Llama-style model from a `LlamaConfig` (a few million
parameters), pre-trains it on CPU for a given number of minutes on the corpus
(causal language modelling over a continuous token stream), gives the
tokenizer a chat template, and saves both with ``save_pretrained``. Nothing is
downloaded. The ``tiny`` size (a few hundred thousand parameters, a few dozen
steps) builds in seconds for tests.

    python -m customization.training.demo_base --out DIR --minutes 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

CORPUS_DIR = Path(__file__).resolve().parent.parent / "data" / "corpus"
CORPUS_LICENCE = "CC0-1.0"

BOS, EOS, PAD = "<|bos|>", "<|end|>", "<|pad|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, "<|system|>", "<|user|>", "<|assistant|>"]
# Each turn: a role token, a newline, the content, the end token, a newline. The
# end token is also the EOS, so generation stops where an assistant turn ends.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

SIZES: dict[str, dict[str, Any]] = {
    # ~2.6M parameters: on one free CPU core it sees a few million tokens in five minutes
    "small": {"vocab_size": 4096, "hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 4,
              "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 512,
              "seq_len": 128, "batch_size": 16, "learning_rate": 3e-3},
    "tiny": {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
             "seq_len": 64, "batch_size": 8, "learning_rate": 3e-3},
}
SAMPLE_PROMPTS = ["It was raining softly when", "How to make a cup of tea.", "Dear claims team, I am writing to report",
                  "Agent: Hello, my name is"]


def corpus_files(corpus_path: str | Path) -> list[Path]:
    """The corpus's text files (a folder of *.txt, or one file)."""
    path = Path(corpus_path)
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(f"no corpus text files at {corpus_path}")
    return files


def train_tokenizer(files: list[Path], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on `files`, wrapped for transformers, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train([str(f) for f in files], trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def _token_stream(tokenizer: Any, files: list[Path]) -> torch.Tensor:
    ids: list[int] = []
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                ids += [tokenizer.bos_token_id] + tokenizer(line, add_special_tokens=False)["input_ids"]
                ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def build_demo_base(
    out_dir: str | Path,
    *,
    corpus_path: str | Path = CORPUS_DIR,
    minutes: float = 5.0,
    seed: int = 0,
    size: str = "small",
    max_steps: int | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train the tokenizer and pre-train the model for `minutes` (or `max_steps`); save to `out_dir`.

    Returns a description: the folder, parameter count, steps, tokens, losses,
    the sha256 of every saved file and of every corpus file, the corpus
    licence and sample generations.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    shape = dict(SIZES[size])
    seq_len, batch_size, lr = shape.pop("seq_len"), shape.pop("batch_size"), shape.pop("learning_rate")
    started = time.perf_counter()
    random.seed(seed)
    torch.manual_seed(seed)
    files = corpus_files(corpus_path)
    tokenizer = train_tokenizer(files, shape["vocab_size"])
    stream = _token_stream(tokenizer, files)
    held = max(seq_len * 4, len(stream) // 50)
    train_stream, eval_stream = stream[:-held], stream[-held:]

    config = LlamaConfig(
        **{**shape, "vocab_size": len(tokenizer)},
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, rms_norm_eps=1e-5,
    )
    model = LlamaForCausalLM(config)
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    budget = minutes * 60.0
    generator = torch.Generator().manual_seed(seed)
    warmup = 20 if size == "small" else 2
    step, losses = 0, []
    train_started = time.perf_counter()
    model.train()
    while True:
        elapsed = time.perf_counter() - train_started
        progress = step / max_steps if max_steps else elapsed / budget if budget > 0 else 1.0
        if progress >= 1.0:
            break
        factor = min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr * factor
        starts = torch.randint(0, len(train_stream) - seq_len - 1, (batch_size,), generator=generator)
        batch = torch.stack([train_stream[s : s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        step += 1
        if log is not None and step % 25 == 0:
            log(f"step {step} loss {sum(losses[-25:]) / len(losses[-25:]):.3f} "
                f"elapsed {time.perf_counter() - train_started:.0f}s")

    model.eval()
    with torch.no_grad():
        windows = eval_stream[: (len(eval_stream) // seq_len) * seq_len].view(-1, seq_len)
        eval_loss = float(model(input_ids=windows, labels=windows, use_cache=False).loss)
        samples = []
        for prompt in SAMPLE_PROMPTS:
            ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]])
            output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=40,
                                    do_sample=False, pad_token_id=tokenizer.pad_token_id)
            samples.append({"prompt": prompt,
                            "completion": tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True)})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    description = {
        "path": str(out),
        "architecture": "LlamaForCausalLM",
        "size": size,
        "parameters": parameters,
        "context_length": config.max_position_embeddings,
        "vocab_size": len(tokenizer),
        "steps": step,
        "tokens": step * batch_size * seq_len,
        "train_loss": sum(losses[-20:]) / len(losses[-20:]) if losses else None,
        "eval_loss": eval_loss,
        "seconds": round(time.perf_counter() - started, 1),
        "seed": seed,
        "corpus": {str(f.name): hashlib.sha256(f.read_bytes()).hexdigest() for f in files},
        "corpus_licence": CORPUS_LICENCE,
        "samples": samples,
    }
    (out / "pedigree_demo_base.json").write_text(json.dumps(description, indent=1, sort_keys=True))
    description["files"] = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.is_file()
    }
    return description


def main(argv: list[str] | None = None) -> int:
    """Command line: build the demo base into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--corpus", default=str(CORPUS_DIR))
    args = parser.parse_args(argv)
    description = build_demo_base(
        args.out, corpus_path=args.corpus, minutes=args.minutes, seed=args.seed, size=args.size,
        log=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print(json.dumps(description, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
