"""The fine-tuning recipe: setup, train, checkpoint, evaluate, save.

`train(config, out_dir)` runs one job in this process, alone or as one rank
of a torchrun (DDP) job: it reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and
uses gloo on CPU, NCCL on GPUs. Each optimizer step takes
``gradient_accumulation x world_size`` micro-batches (packed rows by
default); rank r takes every world_size-th of them. The loss of a step is the
sum of token losses over all its micro-batches on all ranks divided by their
number of loss tokens, so accumulation and the number of processes never
change what one step computes.

A run resumes from ``<out>/checkpoints/latest`` when it exists: the data
order is a pure function of the seed, epoch and step, and the checkpoint
holds weights, optimizer, scheduler and RNG states, so a run killed after a
checkpoint ends with the configured number of steps and the same weights as
an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from customization.training import checkpointing
from customization.training.config import TrainingConfig
from customization.training.data import (
    IGNORE_INDEX,
    Example,
    MicroBatch,
    Record,
    epoch_order,
    mix,
    pack,
    pad_batches,
    read_records,
    split_eval,
    steps_per_epoch,
    tokenize_records,
)
from customization.training.metrics import JsonlMetricsLogger, MetricsLogger, NullMetricsLogger

MODEL_DIR = "model"
RESULT_FILE = "result.json"


class TrainingError(RuntimeError):
    """The run cannot go on (NaN loss, a bad checkpoint): a deterministic failure, not worth a retry."""


class SimulatedCrash(RuntimeError):
    """Raised by tests from `on_step` to stop a run the way a killed worker would."""


@dataclass
class RunResult:
    """What a finished (or cancelled) run produced."""

    status: str  # "succeeded" or "cancelled"
    steps: int
    total_steps: int
    out_dir: str
    model_dir: str | None
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    metrics: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, str]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (what result.json holds)."""
        return {
            "status": self.status,
            "steps": self.steps,
            "total_steps": self.total_steps,
            "out_dir": self.out_dir,
            "model_dir": self.model_dir,
            "files": self.files,
            "metrics": self.metrics,
            "samples": self.samples,
            "config": self.config,
            "environment": self.environment,
        }


@dataclass
class Distributed:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and logs."""
        return self.rank == 0


def setup_distributed() -> Distributed:
    """Join the torchrun job named by the environment, or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    initialized_here = False
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
        initialized_here = True
    return Distributed(rank, world_size, local_rank, device, initialized_here)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digest_tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# --- setup -----------------------------------------------------------------------


def load_base(config: TrainingConfig, device: torch.device) -> tuple[Any, Any]:
    """The base model (fp32 master weights) and its tokenizer, from a local folder only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(config.base_model)
    if not (path / "config.json").is_file():
        raise TrainingError(f"base_model {config.base_model}: not a model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=torch.float32, attn_implementation=config.attn_implementation, local_files_only=True
    )
    model = model.to(device)  # type: ignore[arg-type]
    return model, tokenizer


def apply_method(model: Any, config: TrainingConfig) -> Any:
    """Wrap the model for LoRA/DoRA with peft, or mark every weight trainable (full)."""
    if not config.uses_adapter:
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=float(config.lora_alpha),  # type: ignore[arg-type]  # peft accepts floats
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        fan_in_fan_out=config.fan_in_fan_out(model.config.model_type),
        use_dora=config.method == "dora",
        task_type="CAUSAL_LM",
        bias="none",
    )
    return get_peft_model(model, lora)


def build_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases and norms (1-D)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.AdamW(
        groups,
        lr=float(config.learning_rate),
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
    )


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Learning-rate multiplier at optimizer step `step` (0-based): linear warmup, then the schedule."""
    if warmup and step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(1.0, max(0.0, progress))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig, total_steps: int) -> Any:
    """A LambdaLR following `lr_factor` (its state is just the step count)."""
    warmup = int(config.warmup_steps) if config.warmup_steps != "auto" else 0
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(step, warmup=warmup, total=total_steps, schedule=config.lr_schedule),
    )


@dataclass
class PreparedData:
    """Tokenised and batched data for one run."""

    train_batches: list[MicroBatch]
    eval_batches: list[MicroBatch]
    eval_records: list[Record]
    train_examples: int
    eval_examples: int
    dropped: int
    per_source: list[dict[str, Any]]


def prepare_data(config: TrainingConfig, tokenizer: Any) -> PreparedData:
    """Read, split, tokenise, mix and batch every source (deterministic by seed)."""
    max_len = int(config.max_seq_len)
    per_source_examples: list[list[Example]] = []
    eval_records: list[Record] = []
    dropped = 0
    per_source = []
    for index, source in enumerate(config.datasets):
        records = read_records(source)
        if config.eval_datasets:
            train_records = records
        else:
            train_records, held = split_eval(records, config.eval_fraction, config.seed + index)
            eval_records += held
        examples, lost = tokenize_records(tokenizer, train_records, max_len, index)
        dropped += lost
        per_source_examples.append(examples)
        per_source.append(
            {"name": source.name or source.path, "records": len(records), "train_examples": len(examples),
             "weight": source.weight, "tokens": sum(len(e.input_ids) for e in examples)}
        )
    for source in config.eval_datasets:
        eval_records += read_records(source)
    eval_records = eval_records[: config.max_eval_examples]
    eval_examples, lost = tokenize_records(tokenizer, eval_records, max_len, -1)
    dropped += lost
    if not any(per_source_examples):
        raise TrainingError("no training example is left after tokenisation and truncation")
    mixed = mix(per_source_examples, [s.weight for s in config.datasets], config.seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    if config.packing:
        train_batches = pack(mixed, config.batch_tokens)
        eval_batches = pack(eval_examples, config.batch_tokens)
    else:
        train_batches = pad_batches(mixed, config.batch_size, pad_id)
        eval_batches = pad_batches(eval_examples, config.batch_size, pad_id)
    return PreparedData(train_batches, eval_batches, eval_records, len(mixed), len(eval_examples), dropped, per_source)


# --- the loop --------------------------------------------------------------------


def token_loss_sum(model: Any, batch: MicroBatch, device: torch.device, autocast: Any) -> torch.Tensor:
    """Sum of next-token cross-entropy over the batch's loss positions (fp32)."""
    with autocast():
        logits = model(**batch.model_inputs(device)).logits
    labels = batch.labels.to(device)
    return F.cross_entropy(
        logits[:, :-1, :].float().reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )


def _autocast_factory(precision: str, device: torch.device) -> Callable[[], Any]:
    if precision == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _all_reduce(values: list[float], dist: Distributed) -> list[float]:
    if dist.world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=dist.device)
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()


@torch.no_grad()
def evaluate(model: Any, batches: list[MicroBatch], dist: Distributed, autocast: Any) -> float | None:
    """Mean token loss over the evaluation batches (sharded over ranks), or None without eval data."""
    was_training = model.training
    model.eval()
    loss_sum, tokens = 0.0, 0.0
    for index in range(dist.rank, len(batches), dist.world_size):
        loss_sum += float(token_loss_sum(model, batches[index], dist.device, autocast))
        tokens += batches[index].loss_tokens
    loss_sum, tokens = _all_reduce([loss_sum, tokens], dist)
    if was_training:
        model.train()
    return loss_sum / tokens if tokens else None


def step_batches(
    batches: list[MicroBatch], step: int, per_epoch: int, config: TrainingConfig, dist: Distributed
) -> tuple[list[MicroBatch | None], int, int, float]:
    """This rank's micro-batches for optimizer step `step` (None: a zero-weight stand-in),
    and the step's global loss tokens, real tokens and epoch position."""
    epoch, index = divmod(step, per_epoch)
    order = epoch_order(len(batches), config.seed, epoch)
    width = config.gradient_accumulation * dist.world_size
    group = [batches[i] for i in order[index * width : (index + 1) * width]]
    mine: list[MicroBatch | None] = list(group[dist.rank :: dist.world_size])
    mine += [None] * (config.gradient_accumulation - len(mine))
    loss_tokens = sum(b.loss_tokens for b in group)
    real_tokens = sum(b.real_tokens for b in group)
    return mine, loss_tokens, real_tokens, epoch + (index + 1) / per_epoch


def _rng_seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _environment() -> dict[str, Any]:
    import peft
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
    }


def train(
    config: TrainingConfig,
    out_dir: str | Path,
    *,
    logger: MetricsLogger | None = None,
    should_cancel: Callable[[], bool] | None = None,
    on_step: Callable[[int], None] | None = None,
    resume: bool = True,
) -> RunResult:
    """Run (or resume) one fine-tune and write its outputs under `out_dir`.

    `logger` receives every event on rank 0 (default: ``<out>/metrics.jsonl``).
    `should_cancel` is asked before each optimizer step (rank 0 decides for
    all ranks); a cancelled run stops there, keeps its last checkpoint and
    saves nothing else. `on_step(step)` is called after each optimizer step
    (and its checkpoint). Outputs: ``<out>/model/`` (adapter or full weights,
    safetensors) and ``<out>/result.json``.
    """
    out = Path(out_dir)
    if resume:
        finished = finished_result(config, out)
        if finished is not None:  # a re-delivered job that already ran to the end
            return finished
    dist = setup_distributed()
    own_logger = logger is None
    if not dist.is_main:
        logger = NullMetricsLogger()
    elif logger is None:
        logger = JsonlMetricsLogger(out / "metrics.jsonl")
    try:
        return _train(config, out, dist, logger, should_cancel, on_step, resume)
    finally:
        if own_logger:
            logger.close()
        if dist.initialized_here:
            torch.distributed.destroy_process_group()


def finished_result(config: TrainingConfig, out_dir: str | Path) -> RunResult | None:
    """The stored result of a run of this same configuration that already succeeded in `out_dir`."""
    path = Path(out_dir) / RESULT_FILE
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    if stored.get("status") != "succeeded" or stored.get("requested_config") != config.to_dict():
        return None
    stored.pop("requested_config")
    return RunResult(**stored)


def _train(
    config: TrainingConfig,
    out: Path,
    dist: Distributed,
    logger: MetricsLogger,
    should_cancel: Callable[[], bool] | None,
    on_step: Callable[[int], None] | None,
    resume: bool,
) -> RunResult:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    requested = config.to_dict()
    _rng_seed_all(config.seed)
    model, tokenizer = load_base(config, dist.device)
    cuda = dist.device.type == "cuda"
    config = config.resolve(
        model_type=model.config.model_type,
        max_position_embeddings=getattr(model.config, "max_position_embeddings", None),
        cuda_available=cuda,
        bf16_supported=cuda and torch.cuda.is_bf16_supported(),
    )
    data = prepare_data(config, tokenizer)
    per_epoch = steps_per_epoch(len(data.train_batches), config.gradient_accumulation, dist.world_size)
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * per_epoch))
    config = config.resolve(
        model_type=model.config.model_type,
        max_position_embeddings=getattr(model.config, "max_position_embeddings", None),
        cuda_available=cuda,
        bf16_supported=cuda and torch.cuda.is_bf16_supported(),
        total_steps=total_steps,
    )
    model = apply_method(model, config)
    model.train()
    parameters = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, total_steps)
    autocast = _autocast_factory(str(config.precision), dist.device)

    checkpoint = checkpointing.latest_checkpoint(out) if resume else None
    state: dict[str, Any] = {}
    if checkpoint is not None:
        state = checkpointing.load_checkpoint(
            checkpoint, model=model, optimizer=optimizer, scheduler=scheduler,
            rank=dist.rank, world_size=dist.world_size,
        )
        if state.get("config") != config.to_dict():
            raise TrainingError(f"checkpoint {checkpoint} was written with another configuration")
        start_step = int(state["step"])
    else:
        start_step = 0
        state = {"base_eval_loss": evaluate(model, data.eval_batches, dist, autocast), "config": config.to_dict()}
    base_eval_loss = state["base_eval_loss"]

    ddp_model: Any = model
    if dist.world_size > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if cuda else None
        )

    logger.log({
        "type": "start", "resumed_from_step": start_step if checkpoint else None, "total_steps": total_steps,
        "steps_per_epoch": per_epoch, "world_size": dist.world_size, "parameters": parameters,
        "trainable_parameters": sum(p.numel() for p in trainable), "train_examples": data.train_examples,
        "eval_examples": data.eval_examples, "dropped_examples": data.dropped,
        "micro_batches_per_epoch": len(data.train_batches),
        "train_tokens_per_epoch": sum(b.real_tokens for b in data.train_batches),
        "base_eval_loss": base_eval_loss, "config": config.to_dict(), "sources": data.per_source,
    })

    status = "succeeded"
    step = start_step
    last_loss = state.get("last_loss")
    eval_loss: float | None = None
    tokens_seen = int(state.get("tokens_seen", 0))
    while step < total_steps:
        cancel = 1.0 if (dist.is_main and should_cancel is not None and should_cancel()) else 0.0
        if _all_reduce([cancel], dist)[0] > 0:
            status = "cancelled"
            logger.log({"type": "cancelled", "step": step})
            break
        step_started = time.perf_counter()
        mine, loss_tokens, real_tokens, epoch = step_batches(data.train_batches, step, per_epoch, config, dist)
        local_loss = 0.0
        for index, batch in enumerate(mine):
            weight = 1.0
            if batch is None:  # this rank has no micro-batch left in a partial last step
                batch, weight = data.train_batches[0], 0.0
            last = index == len(mine) - 1
            sync = contextlib.nullcontext() if last or dist.world_size == 1 else ddp_model.no_sync()
            with sync:
                loss_sum = token_loss_sum(ddp_model, batch, dist.device, autocast)
                # DDP averages gradients over ranks: scale back up so a step's gradient is
                # the mean over all its loss tokens wherever they ran.
                (loss_sum * (weight * dist.world_size / max(1, loss_tokens))).backward()
            local_loss += loss_sum.item() * weight
        lr = optimizer.param_groups[0]["lr"]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(
            trainable, config.max_grad_norm if config.max_grad_norm > 0 else float("inf")
        ))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss = _all_reduce([local_loss], dist)[0] / max(1, loss_tokens)
        if not math.isfinite(loss):
            raise TrainingError(f"the loss is {loss} at step {step}: lower the learning rate")
        last_loss = loss
        tokens_seen += real_tokens
        seconds = time.perf_counter() - step_started
        logger.log({
            "type": "step", "step": step, "total_steps": total_steps, "epoch": round(epoch, 4),
            "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens": real_tokens,
            "loss_tokens": loss_tokens, "tokens_per_second": real_tokens / seconds if seconds else None,
            "seconds": seconds,
        })
        if config.eval_every and step % config.eval_every == 0 and step < total_steps:
            eval_loss = evaluate(model, data.eval_batches, dist, autocast)
            logger.log({"type": "eval", "step": step, "eval_loss": eval_loss})
        if config.checkpoint_every and step % config.checkpoint_every == 0:
            path = checkpointing.save_checkpoint(
                out, step=step, model=model, optimizer=optimizer, scheduler=scheduler,
                state={**state, "last_loss": last_loss, "tokens_seen": tokens_seen,
                       "data_position": {"epoch": step // per_epoch, "step_in_epoch": step % per_epoch,
                                         "micro_batches_per_step": config.gradient_accumulation * dist.world_size}},
                rank=dist.rank, world_size=dist.world_size, keep=config.keep_checkpoints,
            )
            logger.log({"type": "checkpoint", "step": step, "path": str(path)})
        if on_step is not None:
            on_step(step)

    environment = _environment()
    result = RunResult(
        status=status, steps=step, total_steps=total_steps, out_dir=str(out), model_dir=None,
        config=config.to_dict(), environment=environment,
    )
    if status == "cancelled":
        return result

    eval_loss = evaluate(model, data.eval_batches, dist, autocast)
    weight_digests = _gather_weight_digests(trainable, dist)
    samples = generate_samples(model, tokenizer, data.eval_records, config, dist.device) if dist.is_main else []
    if dist.is_main:
        model_dir = out / MODEL_DIR
        model.save_pretrained(str(model_dir), safe_serialization=True)
        if not config.uses_adapter:
            tokenizer.save_pretrained(str(model_dir))
        result.model_dir = str(model_dir)
        result.files = digest_tree(model_dir)
    result.metrics = {
        "train_loss": last_loss,
        "eval_loss": eval_loss,
        "perplexity": math.exp(eval_loss) if eval_loss is not None and eval_loss < 50 else None,
        "base_eval_loss": base_eval_loss,
        "base_perplexity": math.exp(base_eval_loss) if base_eval_loss is not None and base_eval_loss < 50 else None,
        "train_tokens": tokens_seen,
        "seconds": time.perf_counter() - started,
        "parameters": parameters,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "rank_weight_digests": weight_digests,
    }
    result.samples = samples
    if dist.is_main:
        stored = {**result.to_dict(), "requested_config": requested}
        (out / RESULT_FILE).write_text(json.dumps(stored, indent=1, sort_keys=True))
    logger.log({"type": "done", "step": step, **{k: v for k, v in result.metrics.items()}})
    if dist.world_size > 1:
        torch.distributed.barrier()
    return result


def _gather_weight_digests(trainable: list[torch.nn.Parameter], dist: Distributed) -> list[str]:
    """sha256 of each rank's trainable weights (all equal when data parallelism kept them in step)."""
    digest = hashlib.sha256()
    for param in trainable:
        digest.update(param.detach().to("cpu").contiguous().numpy().tobytes())
    if dist.world_size == 1:
        return [digest.hexdigest()]
    gathered: list[Any] = [None] * dist.world_size
    torch.distributed.all_gather_object(gathered, digest.hexdigest())
    return [str(d) for d in gathered]


# --- samples ---------------------------------------------------------------------


def sample_prompt(record: Record, tokenizer: Any) -> str:
    """The prompt a record gives for a sample generation."""
    content = record.content
    if record.layout == "prompt_completion":
        return str(content["prompt"])
    if record.layout == "chat":
        messages = content["messages"]
        last_assistant = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        return str(tokenizer.apply_chat_template(messages[:last_assistant], tokenize=False, add_generation_prompt=True))
    words = str(content["text"]).split()
    return " ".join(words[: max(3, min(8, len(words) // 2))])


@torch.no_grad()
def generate_samples(
    model: Any, tokenizer: Any, records: list[Record], config: TrainingConfig, device: torch.device
) -> list[dict[str, str]]:
    """Greedy generations for the first few evaluation prompts."""
    samples = []
    model.eval()
    for record in records[: config.sample_prompts]:
        prompt = sample_prompt(record, tokenizer)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if tokenizer.bos_token_id is not None and record.layout != "chat":
            ids = [tokenizer.bos_token_id] + ids
        input_ids = torch.tensor([ids], device=device)
        output = model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
            max_new_tokens=config.sample_max_new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
        completion = tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)
        samples.append({"prompt": prompt, "completion": completion})
    model.train()
    return samples


def iter_steps(events: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The step events of a metrics stream, in order."""
    return (e for e in events if e.get("type") == "step")
