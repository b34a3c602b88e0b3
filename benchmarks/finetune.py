"""Fine-tuning speed: Pedigree's padding-free packed LoRA path against a plain transformers.Trainer + peft.

In one run, on the same tiny Llama-style model (built from a config, the demo
tokenizer trained on the shipped corpus), the same LoRA settings and the same
dataset of mixed-length prompt/completion records (lengths log-normal, like
real chat data), one epoch each:

- Pedigree: ``customization.training.recipe.train`` with packing (the default):
  examples concatenated into padding-free rows, position ids restarting per
  example, loss on completions only;
- baseline: ``transformers.Trainer`` with a peft LoRA model, batches padded to
  the longest record in each batch (no packing), same examples per optimizer
  step on average, same learning rate, schedule, warmup and clipping.

Each variant runs in its own process (so peak RSS is its own), alternating
over ``--rounds``. Real tokens per second count only non-padding tokens,
over the training loop's wall time. Both final eval losses are measured by
the same code on the same held-out records. Prints the figures and ends with
one JSON line.

    .venv/bin/python benchmarks/finetune.py [--records 600] [--rounds 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL_SHAPE = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
               "num_key_value_heads": 4, "max_position_embeddings": 1024}
EXAMPLES_PER_STEP = 8
LEARNING_RATE = 1e-3
LORA = {"r": 8, "alpha": 16.0, "dropout": 0.0}
SEED = 0
MAX_SEQ_LEN = 1024


# --- setup (parent process) --------------------------------------------------------


def build_model_and_data(workdir: Path, records: int) -> dict[str, Any]:
    """The base model folder, the training and eval files, and the packing budget."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from customization.training.demo_base import CORPUS_DIR, corpus_files, train_tokenizer

    torch.manual_seed(SEED)
    files = corpus_files(CORPUS_DIR)
    tokenizer = train_tokenizer(files, 4096)
    tokenizer.model_max_length = MAX_SEQ_LEN
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True, **MODEL_SHAPE)
    base = workdir / "base"
    LlamaForCausalLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)

    sentences = [s.strip() + "." for f in files for s in f.read_text().replace("\n", " ").split(". ") if s.strip()]
    rng = random.Random(SEED)

    def record() -> dict[str, str]:
        # chat-like: a short question, an answer whose length is log-normal (median ~3 sentences, long tail)
        answer_sentences = max(1, min(40, int(rng.lognormvariate(1.1, 0.9))))
        return {"prompt": "Customer: " + rng.choice(sentences) + "\nAgent:",
                "completion": " " + " ".join(rng.choice(sentences) for _ in range(answer_sentences))}

    train_records = [record() for _ in range(records)]
    eval_records = [record() for _ in range(max(32, records // 10))]
    train_path, eval_path = workdir / "train.jsonl", workdir / "eval.jsonl"
    train_path.write_text("".join(json.dumps(r) + "\n" for r in train_records))
    eval_path.write_text("".join(json.dumps(r) + "\n" for r in eval_records))
    lengths = []
    for r in train_records:
        n = 1 + len(tokenizer(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"]) + 1
        lengths.append(min(n, MAX_SEQ_LEN))
    steps = math.ceil(records / EXAMPLES_PER_STEP)
    # tokens per packed row so that one epoch has about as many optimizer steps as the
    # baseline (the same examples per step on average); never below one full example
    batch_tokens = max(max(lengths), math.ceil(sum(lengths) / steps * 1.04))
    return {"base": str(base), "train": str(train_path), "eval": str(eval_path), "batch_tokens": batch_tokens,
            "lengths": lengths, "baseline_steps": steps}


# --- variants (child processes) ----------------------------------------------------


def eval_loss(model: Any, tokenizer: Any, eval_path: str) -> float:
    """Mean completion-token loss on the eval file, the same code for both variants."""
    import torch

    from customization.training.config import DataSource
    from customization.training.data import pack, read_records, tokenize_records
    from customization.training.recipe import token_loss_sum

    examples, _ = tokenize_records(tokenizer, read_records(DataSource(eval_path)), MAX_SEQ_LEN)
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for batch in pack(examples, 4096):
            total += float(token_loss_sum(model, batch, torch.device("cpu"), torch.no_grad))
            tokens += batch.loss_tokens
    return total / tokens


def run_pedigree(setup: dict[str, Any], out: Path) -> dict[str, Any]:
    """One epoch through customization.training.recipe.train (packing)."""
    from customization.training.config import TrainingConfig
    from customization.training.metrics import read_events
    from customization.training.recipe import train

    config = TrainingConfig.from_dict({
        "base_model": setup["base"], "datasets": [{"path": setup["train"]}], "eval_datasets": [{"path": setup["eval"]}],
        "method": "lora", "lora_r": LORA["r"], "lora_alpha": LORA["alpha"], "lora_dropout": LORA["dropout"],
        "learning_rate": LEARNING_RATE, "lr_schedule": "cosine", "warmup_steps": 0, "epochs": 1,
        "packing": True, "batch_tokens": setup["batch_tokens"],
        "max_seq_len": min(MAX_SEQ_LEN, setup["batch_tokens"]),
        "seed": SEED, "sample_prompts": 0, "max_grad_norm": 1.0,
    })
    result = train(config, out, resume=False)
    steps = [e for e in read_events(out / "metrics.jsonl") if e["type"] == "step"]
    seconds = steps[-1]["time"] - (steps[0]["time"] - steps[0]["seconds"])
    tokens = sum(e["tokens"] for e in steps)
    return {"tokens": tokens, "seconds": seconds, "steps": len(steps), "eval_loss": result.metrics["eval_loss"]}


def run_trainer(setup: dict[str, Any], out: Path) -> dict[str, Any]:
    """One epoch through transformers.Trainer + peft, padded to the longest record per batch."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from customization.training.config import DataSource
    from customization.training.data import read_records, tokenize_records

    tokenizer = AutoTokenizer.from_pretrained(setup["base"])
    examples, _ = tokenize_records(tokenizer, read_records(DataSource(setup["train"])), MAX_SEQ_LEN)
    dataset = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in examples]
    pad = tokenizer.pad_token_id
    real_tokens = 0

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        nonlocal real_tokens
        width = max(len(b["input_ids"]) for b in batch)
        real_tokens += sum(len(b["input_ids"]) for b in batch)
        return {
            "input_ids": torch.tensor([b["input_ids"] + [pad] * (width - len(b["input_ids"])) for b in batch]),
            "labels": torch.tensor([b["labels"] + [-100] * (width - len(b["labels"])) for b in batch]),
            "attention_mask": torch.tensor([[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch]),
        }

    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(setup["base"], dtype=torch.float32, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(
        r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    times: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            times["start"] = time.perf_counter()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            times["end"] = time.perf_counter()

    arguments = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=EXAMPLES_PER_STEP, num_train_epochs=1,
        learning_rate=LEARNING_RATE, lr_scheduler_type="cosine", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, save_strategy="no", report_to=[], seed=SEED, use_cpu=True,
        dataloader_num_workers=0, remove_unused_columns=False, logging_strategy="no", disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=dataset, data_collator=collate,
                      callbacks=[Clock()])
    trainer.train()
    return {"tokens": real_tokens, "seconds": times["end"] - times["start"], "steps": trainer.state.global_step,
            "eval_loss": eval_loss(model, tokenizer, setup["eval"])}


def child(variant: str, setup_path: str, out: str, threads: int) -> None:
    """Run one variant and print its figures (and this process's peak RSS) as JSON."""
    import torch

    torch.set_num_threads(threads)
    setup = json.loads(Path(setup_path).read_text())
    figures = (run_pedigree if variant == "pedigree" else run_trainer)(setup, Path(out))
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(figures), flush=True)


# --- main ------------------------------------------------------------------------


def main() -> None:
    """Set up once, run both variants (alternating per round), print ratios and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per variant (the machine is shared)")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "SETUP", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], args.threads)
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="pedigree-bench-finetune-") as tmp:
        workdir = Path(tmp)
        setup = build_model_and_data(workdir, args.records)
        lengths = setup.pop("lengths")
        (workdir / "setup.json").write_text(json.dumps(setup))
        print(f"records: {args.records}, tokens per record: median {statistics.median(lengths):.0f}, "
              f"mean {statistics.mean(lengths):.0f}, p95 {sorted(lengths)[int(0.95 * len(lengths))]}, max {max(lengths)}")
        print(f"examples per step: {EXAMPLES_PER_STEP} (baseline), packed row budget {setup['batch_tokens']} tokens")
        runs: dict[str, list[dict[str, Any]]] = {"pedigree": [], "trainer": []}
        for round_index in range(args.rounds):
            order = ["pedigree", "trainer"] if round_index % 2 == 0 else ["trainer", "pedigree"]
            for variant in order:
                out = workdir / f"{variant}-{round_index}"
                completed = subprocess.run(
                    [sys.executable, __file__, "--threads", str(args.threads), "--child", variant,
                     str(workdir / "setup.json"), str(out)],
                    env=env, capture_output=True, text=True, cwd=ROOT,
                )
                line = next((x for x in completed.stdout.splitlines() if x.startswith("RESULT ")), None)
                if completed.returncode != 0 or line is None:
                    raise SystemExit(f"{variant} failed:\n{completed.stderr[-4000:]}")
                figures = json.loads(line[len("RESULT "):])
                figures["tokens_per_second"] = figures["tokens"] / figures["seconds"]
                runs[variant].append(figures)
                print(f"round {round_index + 1} {variant:8s}: {figures['tokens']} real tokens in "
                      f"{figures['seconds']:.1f} s over {figures['steps']} steps = "
                      f"{figures['tokens_per_second']:.0f} tok/s, eval loss {figures['eval_loss']:.4f}, "
                      f"peak RSS {figures['peak_rss_mib']:.0f} MiB", flush=True)

    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[variant])

    ours, base = median("pedigree", "tokens_per_second"), median("trainer", "tokens_per_second")
    ratio = ours / base
    loss_ours, loss_base = median("pedigree", "eval_loss"), median("trainer", "eval_loss")
    loss_gap = abs(loss_ours - loss_base) / loss_base * 100
    print(f"real tokens/s: Pedigree packed {ours:.0f}, Trainer padded {base:.0f}: {ratio:.2f}x (target >= 1.5x)")
    print(f"final eval loss: Pedigree {loss_ours:.4f}, Trainer {loss_base:.4f}: {loss_gap:.2f}% apart (target <= 2%)")

    def figure(value: float, unit: str, target: float | None, higher: bool) -> dict[str, Any]:
        return {"value": round(value, 4), "unit": unit, "target": target, "higher_is_better": higher}

    figures = {
        "pedigree_tokens_per_s": figure(ours, "tokens/s", None, True),
        "trainer_tokens_per_s": figure(base, "tokens/s", None, True),
        "packed_vs_trainer_ratio": figure(ratio, "x", 1.5, True),
        "pedigree_eval_loss": figure(loss_ours, "nats/token", None, False),
        "trainer_eval_loss": figure(loss_base, "nats/token", None, False),
        "eval_loss_gap_pct": figure(loss_gap, "%", 2.0, False),
        "pedigree_peak_rss_mib": figure(median("pedigree", "peak_rss_mib"), "MiB", None, False),
        "trainer_peak_rss_mib": figure(median("trainer", "peak_rss_mib"), "MiB", None, False),
    }
    print(json.dumps({"benchmark": "finetune", "figures": figures}))


if __name__ == "__main__":
    main()
