"""The built-in engine: one base model in memory, its adapters, continuous batching.

One scheduler thread owns the model. Each step it admits waiting requests
(prefilled together, left-padded, then merged into the running batch's KV
cache) and runs one decode step for every running sequence in a single forward
pass. Rows that use different adapters share that pass through peft's
mixed-adapter ``adapter_names``. Finished or cancelled rows leave the batch at
once, so a short request never waits for a long one.

Adapters are registered only after their files were verified and staged (see
``verify``); their weights are loaded into the model on demand and evicted
least-recently-used when the adapters' resident bytes would exceed the budget.
Nothing here imports Django.
"""

from __future__ import annotations

import inspect
import logging
import queue
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from serving.runtime.errors import (
    EngineError,
    EngineUnavailable,
    GenerationFailed,
    InvalidRequest,
    NotFound,
)
from serving.runtime.verify import normalize_digests, stage_verified_adapter, verify_directory

logger = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch
GREEDY_BELOW = 1e-5  # temperatures under this decode greedily, like vLLM


@dataclass(frozen=True)
class SamplingParams:
    """How one request samples and when it stops."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Event:
    """What a request's sink receives: a text delta, the finish (with usage), or an error."""

    kind: str  # "delta" | "finish" | "error"
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: EngineError | None = None


@dataclass
class Sequence:
    """One request being generated."""

    id: str
    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None
    sink: Callable[[Event], None]
    generated: list[int] = field(default_factory=list)
    sent_chars: int = 0
    position: int = 0
    last_token: int = 0
    generator: torch.Generator | None = None
    cancelled: bool = False
    done: bool = False


@dataclass
class AdapterRecord:
    """A registered adapter: its verified staged copy and whether its weights are resident."""

    name: str
    source_path: str
    staged_dir: Path
    digests: dict[str, str]
    estimated_bytes: int
    resident: bool = False
    resident_bytes: int = 0
    last_used: float = 0.0
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class EngineStats:
    """Counters a benchmark or test reads to see that batching and eviction happen."""

    steps: int = 0
    forward_rows: int = 0
    max_batch_seen: int = 0
    mixed_adapter_steps: int = 0
    adapter_loads: int = 0
    adapter_evictions: int = 0


class Engine:
    """A base model with adapters, serving sequences from a scheduler thread."""

    def __init__(
        self,
        base_dir: str | Path,
        *,
        served_model_name: str | None = None,
        memory_budget_mb: float = 512.0,
        max_batch: int = 16,
        max_model_len: int | None = None,
        dtype: str = "float32",
        staging_root: str | Path | None = None,
    ) -> None:
        self.base_dir = str(base_dir)
        self.served_model_name = served_model_name or self.base_dir
        self.memory_budget_bytes = int(memory_budget_mb * 1024 * 1024)
        self.max_batch = max_batch
        self.created = int(time.time())
        self.tokenizer = AutoTokenizer.from_pretrained(self.base_dir)
        self.model: Any = AutoModelForCausalLM.from_pretrained(
            self.base_dir, dtype=getattr(torch, dtype)
        )
        self.model.eval()
        self.base_model: Any = self.model
        self.peft_model: Any = None
        self.config = self.model.config
        config_len = getattr(self.config, "max_position_embeddings", None) or 2048
        self.max_model_len = int(max_model_len or config_len)
        if self.max_model_len > config_len:
            raise ValueError(f"--max-model-len {self.max_model_len} exceeds the model's {config_len}")
        # transformers renamed the forward's cache argument (past_key_values -> cache).
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"
        self.eos_ids = self._eos_ids()
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = next(iter(self.eos_ids), 0)
        self._own_staging = staging_root is None
        self.staging_root = Path(staging_root or tempfile.mkdtemp(prefix="pedigree-engine-"))
        self.adapters: OrderedDict[str, AdapterRecord] = OrderedDict()  # LRU order of use
        self.stats = EngineStats()
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._waiting: list[Sequence] = []
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._running: list[Sequence] = []
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None
        self._stopping = False
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="engine-scheduler", daemon=True)
        self._thread.start()

    # --- public API (any thread) -------------------------------------------

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.config):
            value = getattr(source, "eos_token_id", None) if source is not None else None
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(int(v) for v in value)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return ids

    def model_names(self) -> list[tuple[str, AdapterRecord | None]]:
        """The base's served name, then each registered adapter."""
        with self._lock:
            return [(self.served_model_name, None)] + [(n, r) for n, r in self.adapters.items()]

    def resolve_model(self, name: object) -> str | None:
        """The adapter a request's ``model`` names (None for the base); 404 when unknown."""
        if not isinstance(name, str) or not name:
            raise InvalidRequest("model: a model name is required", param="model")
        if name == self.served_model_name:
            return None
        with self._lock:
            if name in self.adapters:
                return name
        raise NotFound(f"The model `{name}` does not exist.", param="model")

    def check_context(self, prompt_len: int, max_tokens: int | None) -> int:
        """The max_tokens to use, or a 400 when the prompt (plus max_tokens) exceeds the context."""
        if prompt_len == 0:
            raise InvalidRequest("prompt: the prompt is empty", param="prompt")
        if prompt_len >= self.max_model_len:
            raise InvalidRequest(
                f"This model's maximum context length is {self.max_model_len} tokens. However, your "
                f"prompt has {prompt_len} tokens, which leaves no room for the completion. Please "
                "reduce the length of the prompt.",
                param="prompt",
            )
        if max_tokens is None:
            return self.max_model_len - prompt_len
        if prompt_len + max_tokens > self.max_model_len:
            raise InvalidRequest(
                f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                f"requested {prompt_len + max_tokens} tokens ({prompt_len} in the prompt, {max_tokens} "
                "in the completion). Please reduce the length of the prompt or max_tokens.",
                param="max_tokens",
            )
        return max_tokens

    def submit(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        adapter: str | None,
        sink: Callable[[Event], None],
    ) -> Sequence:
        """Queue a request; ``sink`` is called from the scheduler thread with its events."""
        self._raise_if_down()
        seq = Sequence(
            id=uuid.uuid4().hex,
            prompt_ids=list(prompt_ids),
            params=params,
            adapter=adapter,
            sink=sink,
        )
        if params.temperature >= GREEDY_BELOW:
            seq.generator = torch.Generator()
            seq.generator.manual_seed(params.seed if params.seed is not None else torch.seed())
        with self._wakeup:
            self._waiting.append(seq)
            self._wakeup.notify()
        return seq

    def cancel(self, seq: Sequence) -> None:
        """Stop generating for a request whose client went away."""
        seq.cancelled = True
        with self._wakeup:
            self._wakeup.notify()

    def load_adapter(self, name: str, path: str, sha256: object) -> AdapterRecord:
        """Verify, stage and load an adapter (blocking; call it off the event loop).

        400 when the name is taken, a digest differs or is missing, or the
        adapter does not fit this base; 404 when the path does not exist.
        """
        if not isinstance(name, str) or not name or name == self.served_model_name:
            raise InvalidRequest("lora_name: a new, non-empty adapter name is required", param="lora_name")
        if not isinstance(path, str) or not path:
            raise InvalidRequest("lora_path: the adapter folder is required", param="lora_path")
        with self._lock:
            if name in self.adapters:
                raise InvalidRequest(f"The lora adapter '{name}' has already been loaded.", param="lora_name")
        digests = normalize_digests(sha256)
        staged = stage_verified_adapter(path, digests, self.staging_root)
        estimated = sum(p.stat().st_size for p in staged.iterdir() if p.suffix in {".safetensors", ".bin"})
        record = AdapterRecord(
            name=name, source_path=path, staged_dir=staged, digests=digests, estimated_bytes=estimated
        )
        try:
            return self._call(lambda: self._register(record))
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise

    def unload_adapter(self, name: str) -> None:
        """Forget an adapter: its weights leave memory and its requests end with a 404 error."""
        if not isinstance(name, str) or not name:
            raise InvalidRequest("lora_name: the adapter name is required", param="lora_name")
        self._call(lambda: self._unregister(name))

    def snapshot(self) -> dict[str, Any]:
        """Counters and adapter residency, for tests and benchmarks."""
        with self._lock:
            adapters = {
                n: {"resident": r.resident, "bytes": r.resident_bytes or r.estimated_bytes}
                for n, r in self.adapters.items()
            }
            waiting = len(self._waiting)
        return {
            "steps": self.stats.steps,
            "forward_rows": self.stats.forward_rows,
            "max_batch_seen": self.stats.max_batch_seen,
            "mixed_adapter_steps": self.stats.mixed_adapter_steps,
            "adapter_loads": self.stats.adapter_loads,
            "adapter_evictions": self.stats.adapter_evictions,
            "running": len(self._running),
            "waiting": waiting,
            "adapters": adapters,
            "resident_adapter_bytes": sum(a["bytes"] for a in adapters.values() if a["resident"]),
            "memory_budget_bytes": self.memory_budget_bytes,
        }

    def shutdown(self) -> None:
        """Stop the scheduler; waiting and running requests end with a 503."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        self._thread.join(timeout=30)
        if self._own_staging:
            shutil.rmtree(self.staging_root, ignore_errors=True)

    # --- scheduler thread ----------------------------------------------------

    def _raise_if_down(self) -> None:
        if self._stopping or self._failed is not None:
            raise EngineUnavailable("the engine is not running", status=503)

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the scheduler thread between steps and wait for its result."""
        self._raise_if_down()
        future: Future[Any] = Future()
        self._commands.put((fn, future))
        with self._wakeup:
            self._wakeup.notify()
        return future.result()

    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                while True:
                    with self._wakeup:
                        while (
                            not self._stopping
                            and not self._waiting
                            and not self._running
                            and self._commands.empty()
                        ):
                            self._wakeup.wait()
                        if self._stopping:
                            break
                    self._run_commands()
                    self._drop_cancelled()
                    try:
                        self._admit()
                        if self._running:
                            self._decode_step()
                    except Exception as exc:  # noqa: BLE001 - one bad step must not kill the engine
                        self._step_failed(exc)
        except BaseException as exc:  # the engine is dead: say so to everyone waiting
            logger.exception("engine scheduler failed")
            self._failed = exc
        finally:
            self._fail_everything()

    def _step_failed(self, exc: Exception) -> None:
        """A forward pass raised: end the running requests with a 500, keep serving the rest."""
        logger.exception("engine step failed; ending %d running requests", len(self._running), exc_info=exc)
        error = GenerationFailed(f"generation failed: {exc}")
        for seq in self._running:
            self._emit_error(seq, error)
        self._running, self._cache, self._mask = [], None, None

    @property
    def healthy(self) -> bool:
        """False once the scheduler has died or is stopping (health checks say 503)."""
        return self._thread.is_alive() and not self._stopping and self._failed is None

    def _fail_everything(self) -> None:
        error = EngineUnavailable("the engine stopped", status=503)
        with self._lock:
            pending = self._waiting + self._running
            self._waiting, self._running = [], []
        for seq in pending:
            self._emit_error(seq, error)
        while not self._commands.empty():
            _, future = self._commands.get_nowait()
            future.set_exception(error)

    def _run_commands(self) -> None:
        while not self._commands.empty():
            fn, future = self._commands.get_nowait()
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def _emit_error(self, seq: Sequence, error: EngineError) -> None:
        if not seq.done:
            seq.done = True
            seq.sink(Event(kind="error", error=error))

    # adapters (scheduler thread only)

    def _register(self, record: AdapterRecord) -> AdapterRecord:
        with self._lock:
            if record.name in self.adapters:
                raise InvalidRequest(
                    f"The lora adapter '{record.name}' has already been loaded.", param="lora_name"
                )
        if record.estimated_bytes > self.memory_budget_bytes:
            raise InvalidRequest(
                f"adapter '{record.name}' needs {record.estimated_bytes} bytes, more than the engine's "
                f"adapter memory budget ({self.memory_budget_bytes} bytes)",
                param="lora_path",
            )
        with self._lock:
            self.adapters[record.name] = record
        try:
            if not self._make_resident(record):
                # Every resident adapter is in use: keep it registered, load on demand.
                logger.info("adapter %s registered; loads when memory frees", record.name)
        except BaseException:
            with self._lock:
                self.adapters.pop(record.name, None)
            raise
        return record

    def _unregister(self, name: str) -> None:
        with self._lock:
            record = self.adapters.pop(name, None)
        if record is None:
            raise NotFound(f"The lora adapter '{name}' cannot be found.", param="lora_name")
        error = NotFound(f"The model `{name}` does not exist.", param="model")
        with self._lock:
            waiting = [s for s in self._waiting if s.adapter == name]
            self._waiting = [s for s in self._waiting if s.adapter != name]
        for seq in waiting:
            self._emit_error(seq, error)
        doomed = [i for i, s in enumerate(self._running) if s.adapter == name]
        for i in doomed:
            self._emit_error(self._running[i], error)
        self._remove_rows(set(doomed))
        if record.resident:
            self._evict(record)
        shutil.rmtree(record.staged_dir, ignore_errors=True)

    def _in_use(self, name: str, pinned: frozenset[str] = frozenset()) -> bool:
        return name in pinned or any(s.adapter == name for s in self._running)

    def _resident_bytes(self) -> int:
        return sum(r.resident_bytes for r in self.adapters.values() if r.resident)

    def _make_resident(self, record: AdapterRecord, pinned: frozenset[str] = frozenset()) -> bool:
        """Load ``record``'s weights, evicting idle adapters least-recently-used first.

        Adapters named in ``pinned`` (those of requests admitted in the same
        step) count as in use. False when the budget cannot be met because the
        others are all in use.
        """
        record.last_used = time.monotonic()
        with self._lock:
            self.adapters.move_to_end(record.name)
        if record.resident:
            return True
        # The staged copy is re-checked on every load, before anything is evicted for it.
        verify_directory(record.staged_dir, record.digests)
        need = record.estimated_bytes
        while self._resident_bytes() + need > self.memory_budget_bytes:
            victims = [
                r for r in self.adapters.values() if r.resident and r is not record and not self._in_use(r.name, pinned)
            ]
            if not victims:
                return False
            self._evict(min(victims, key=lambda r: r.last_used))
        try:
            if self.peft_model is None:
                from peft import PeftModel

                self.peft_model = PeftModel.from_pretrained(
                    self.base_model, str(record.staged_dir), adapter_name=record.name, is_trainable=False
                )
                self.peft_model.eval()
                self.model = self.peft_model
            else:
                self.peft_model.load_adapter(str(record.staged_dir), adapter_name=record.name, is_trainable=False)
                if self.peft_model.active_adapter not in self.peft_model.peft_config:
                    # The adapter peft calls active was evicted when no other was left.
                    self.peft_model.set_adapter(record.name)
        except Exception as exc:
            self._discard_partial(record.name)
            raise InvalidRequest(
                f"adapter '{record.name}' could not be loaded onto {self.served_model_name}: {exc}",
                param="lora_path",
            ) from exc
        record.resident = True
        record.resident_bytes = self._adapter_param_bytes(record.name) or need
        self.stats.adapter_loads += 1
        return True

    def _adapter_param_bytes(self, name: str) -> int:
        marker = f".{name}."
        return sum(
            p.numel() * p.element_size() for n, p in self.peft_model.named_parameters() if marker in n + "."
        )

    def _discard_partial(self, name: str) -> None:
        if self.peft_model is not None and name in getattr(self.peft_model, "peft_config", {}):
            try:
                self.peft_model.delete_adapter(name)
            except Exception:  # noqa: BLE001 - best effort after a failed load
                logger.exception("could not remove the partly loaded adapter %s", name)

    def _evict(self, record: AdapterRecord) -> None:
        with warnings.catch_warnings():
            # peft warns when the adapter it calls active goes; rows name their adapter anyway.
            warnings.simplefilter("ignore", UserWarning)
            self.peft_model.delete_adapter(record.name)
            remaining = list(self.peft_model.peft_config)
            if remaining and self.peft_model.active_adapter not in remaining:
                self.peft_model.set_adapter(remaining[0])
        record.resident = False
        record.resident_bytes = 0
        self.stats.adapter_evictions += 1

    # batching (scheduler thread only)

    def _drop_cancelled(self) -> None:
        with self._lock:
            self._waiting = [s for s in self._waiting if not s.cancelled]
        gone = {i for i, s in enumerate(self._running) if s.cancelled}
        if gone:
            self._remove_rows(gone)

    def _admit(self) -> None:
        room = self.max_batch - len(self._running)
        if room <= 0:
            return
        admitted: list[Sequence] = []
        with self._lock:
            candidates = list(self._waiting)
        for seq in candidates:
            if len(admitted) >= room:
                break
            if seq.adapter is not None:
                record = self.adapters.get(seq.adapter)
                if record is None:
                    continue  # unregistered meanwhile: _unregister answered it
                try:
                    pinned = frozenset(s.adapter for s in admitted if s.adapter is not None)
                    if not self._make_resident(record, pinned):
                        continue  # wait until an adapter in use finishes
                except EngineError as exc:
                    self._emit_error(seq, exc)
                    with self._lock:
                        self._waiting.remove(seq)
                    continue
            admitted.append(seq)
        if not admitted:
            return
        with self._lock:
            for seq in admitted:
                self._waiting.remove(seq)
        try:
            self._prefill(admitted)
        except Exception as exc:
            for seq in admitted:
                self._emit_error(seq, GenerationFailed(f"generation failed: {exc}"))
            raise

    def _forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache,
        rows: list[Sequence],
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {}
        model = self.base_model
        if self.peft_model is not None and self.peft_model.peft_config:
            model = self.peft_model
            names = [s.adapter or BASE_ADAPTER for s in rows]
            kwargs["adapter_names"] = names
            if len(set(names)) > 1:
                self.stats.mixed_adapter_steps += 1
        # else: no adapter resident; the base's LoRA layers, if any, hold none and pass through.
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: cache},
            **kwargs,
        )
        self.stats.steps += 1
        self.stats.forward_rows += len(rows)
        self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(rows))
        return out.logits[:, -1, :].float()

    def _prefill(self, seqs: list[Sequence]) -> None:
        width = max(len(s.prompt_ids) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            n = len(seq.prompt_ids)
            ids[row, width - n :] = torch.tensor(seq.prompt_ids, dtype=torch.long)
            mask[row, width - n :] = 1
            seq.position = n
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.config)
        logits = self._forward(ids, mask, positions, cache, seqs)
        self._merge(cache, mask, seqs)
        self._advance(logits, start=len(self._running) - len(seqs))

    def _merge(self, cache: DynamicCache, mask: torch.Tensor, seqs: list[Sequence]) -> None:
        """Append the new rows' cache to the running batch's, left-padding the shorter."""
        if self._cache is None or self._mask is None or not self._running:
            self._cache, self._mask, self._running = cache, mask, list(seqs)
            return
        old_len, new_len = self._mask.shape[1], mask.shape[1]
        width = max(old_len, new_len)
        for old_layer, new_layer in zip(self._cache.layers, cache.layers, strict=True):
            for attr in ("keys", "values"):
                a = getattr(old_layer, attr)
                b = getattr(new_layer, attr)
                a = F.pad(a, (0, 0, width - old_len, 0))
                b = F.pad(b, (0, 0, width - new_len, 0))
                setattr(old_layer, attr, torch.cat([a, b], dim=0))
        self._mask = torch.cat(
            [F.pad(self._mask, (width - old_len, 0)), F.pad(mask, (width - new_len, 0))], dim=0
        )
        self._running.extend(seqs)

    def _remove_rows(self, rows: set[int]) -> None:
        if not rows:
            return
        keep = [i for i in range(len(self._running)) if i not in rows]
        self._running = [self._running[i] for i in keep]
        if not keep or self._cache is None or self._mask is None:
            self._cache, self._mask, self._running = None, None, []
            return
        index = torch.tensor(keep, dtype=torch.long)
        mask = self._mask.index_select(0, index)
        # Columns that are padding in every remaining row can go.
        first = int(mask.any(dim=0).nonzero()[0].item())
        self._mask = mask[:, first:]
        for cache_layer in self._cache.layers:
            layer: Any = cache_layer
            layer.keys = layer.keys.index_select(0, index)[:, :, first:, :]
            layer.values = layer.values.index_select(0, index)[:, :, first:, :]

    def _decode_step(self) -> None:
        assert self._cache is not None and self._mask is not None
        rows = self._running
        ids = torch.tensor([[s.last_token] for s in rows], dtype=torch.long)
        positions = torch.tensor([[s.position] for s in rows], dtype=torch.long)
        self._mask = torch.cat([self._mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
        logits = self._forward(ids, self._mask, positions, self._cache, rows)
        for seq in rows:
            seq.position += 1
        self._advance(logits, start=0)

    def _advance(self, logits: torch.Tensor, *, start: int) -> None:
        """Sample the next token of running rows ``start..``, emit text, retire the finished."""
        rows = self._running[start:]
        greedy = logits.argmax(dim=-1).tolist()
        finished: set[int] = set()
        for offset, seq in enumerate(rows):
            if seq.params.temperature < GREEDY_BELOW:
                token = int(greedy[offset])
            else:
                token = self._sample(logits[offset], seq)
            seq.last_token = token
            if self._step_sequence(seq, token):
                finished.add(start + offset)
        self._remove_rows(finished)

    def _sample(self, logits: torch.Tensor, seq: Sequence) -> int:
        probs = torch.softmax(logits / seq.params.temperature, dim=-1)
        if seq.params.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            cumulative = sorted_probs.cumsum(-1)
            drop = cumulative - sorted_probs > seq.params.top_p
            sorted_probs = sorted_probs.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
            probs = probs / probs.sum()
        return int(torch.multinomial(probs, 1, generator=seq.generator).item())

    def _step_sequence(self, seq: Sequence, token: int) -> bool:
        """Record ``token`` for ``seq``; emit its new text; True when it is finished."""
        if seq.cancelled:
            return True
        finish: str | None = None
        if token in self.eos_ids:
            finish = "stop"
        else:
            seq.generated.append(token)
        text = str(self.tokenizer.decode(seq.generated, skip_special_tokens=True))
        if seq.params.stop:
            search_from = max(0, seq.sent_chars - max(len(s) for s in seq.params.stop))
            hits = [i for i in (text.find(s, search_from) for s in seq.params.stop) if i >= 0]
            if hits:
                text = text[: min(hits)]
                finish = "stop"
        if finish is None and (
            len(seq.generated) >= seq.params.max_tokens or seq.position + 1 >= self.max_model_len
        ):
            finish = "length"
        if finish is None:
            hold = max((len(s) for s in seq.params.stop), default=1) - 1
            safe = len(text) - hold
            while safe > seq.sent_chars and text[safe - 1] == "\ufffd":
                safe -= 1  # an incomplete UTF-8 character: wait for its other bytes
        else:
            safe = len(text)
        if safe > seq.sent_chars:
            seq.sink(Event(kind="delta", text=text[seq.sent_chars : safe]))
            seq.sent_chars = safe
        if finish is not None:
            seq.done = True
            seq.sink(
                Event(
                    kind="finish",
                    finish_reason=finish,
                    prompt_tokens=len(seq.prompt_ids),
                    completion_tokens=len(seq.generated) + (1 if token in self.eos_ids else 0),
                )
            )
            return True
        return False
