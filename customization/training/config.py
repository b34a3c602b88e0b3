"""The training configuration: one frozen object that says everything a run does.

A `TrainingConfig` is built from a plain dict (JSON from the API or a file),
validated field by field (errors name the field and what to do), and resolved:
every ``"auto"`` value is replaced by the concrete value this run will use
(`TrainingConfig.resolve`), so the stored configuration of a model version is
exactly what ran. No Django import here: the Celery side calls this.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

METHODS = ("lora", "dora", "full")
LAYOUTS = ("auto", "text", "prompt_completion", "chat")
SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "bf16", "fp32")

# Target modules per architecture family (model_type in config.json), used when
# the configuration leaves `target_modules` empty. Llama-style: attention and MLP
# projections; GPT-2: its fused attention and projection Conv1D layers.
TARGET_MODULES_BY_MODEL_TYPE: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen3": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gemma2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj"),
}
# Architectures whose linear layers are Conv1D (weights stored transposed).
FAN_IN_FAN_OUT_MODEL_TYPES = frozenset({"gpt2"})


class ConfigError(ValueError):
    """A configuration value is missing or wrong; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class DataSource:
    """One training (or evaluation) dataset: a local JSONL or text file.

    `layout` says how records become tokens (``text``, ``prompt_completion``,
    ``chat``, or ``auto`` to detect from the first record); `weight` is its
    share of the mixture relative to the other sources; `name` identifies it
    in metrics and in the Celery side's lineage (a dataset version id).
    """

    path: str
    layout: str = "auto"
    weight: float = 1.0
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serializable)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainingConfig:
    """Everything one fine-tune run does. ``"auto"`` marks values resolved at start."""

    base_model: str
    datasets: tuple[DataSource, ...]
    method: str = "lora"
    # LoRA / DoRA
    lora_r: int = 8
    lora_alpha: float | str = "auto"  # auto: 2 x r
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] | str = "auto"  # auto: per architecture
    # optimisation
    learning_rate: float | str = "auto"  # auto: 2e-4 for LoRA/DoRA, 2e-5 for full
    lr_schedule: str = "cosine"
    warmup_steps: int | str = "auto"  # auto: 3% of the steps (at least 1 when steps > 10)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    epochs: float = 1.0
    max_steps: int | None = None  # when set, wins over epochs
    # batching
    packing: bool = True
    batch_tokens: int = 4096  # packing: tokens per micro-batch (one padding-free row)
    batch_size: int = 8  # padding: examples per micro-batch
    gradient_accumulation: int = 1
    max_seq_len: int | str = "auto"  # auto: min(model context, 1024)
    # run
    seed: int = 0
    precision: str = "auto"  # auto: bf16 on a GPU that supports it, else fp32
    checkpoint_every: int | None = None  # optimizer steps between checkpoints
    keep_checkpoints: int = 2
    # evaluation
    eval_fraction: float = 0.1  # held out of each training source when eval_datasets is empty
    eval_datasets: tuple[DataSource, ...] = ()
    eval_every: int | None = None  # optimizer steps between evaluations (final eval always runs)
    max_eval_examples: int = 512
    sample_prompts: int = 3
    sample_max_new_tokens: int = 48
    attn_implementation: str = "sdpa"
    extra: dict[str, Any] = field(default_factory=dict)

    # --- construction -----------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Build and validate a configuration from a plain dict (unknown keys are errors)."""
        if not isinstance(data, dict):
            raise ConfigError("config", "must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown field (known fields: {', '.join(sorted(known))})")
        values = dict(data)
        for required in ("base_model", "datasets"):
            if required not in values:
                raise ConfigError(required, "is required")
        values["datasets"] = _sources(values["datasets"], "datasets")
        values["eval_datasets"] = _sources(values.get("eval_datasets", []), "eval_datasets")
        if isinstance(values.get("target_modules"), list):
            values["target_modules"] = tuple(values["target_modules"])
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_json_file(cls, path: str) -> TrainingConfig:
        """Read a configuration from a JSON file; a syntax error names the file and line."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except json.JSONDecodeError as error:
            raise ConfigError("config", f"{path} line {error.lineno}: {error.msg}") from error
        except OSError as error:
            raise ConfigError("config", f"cannot read {path}: {error.strerror}") from error
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form; `from_dict(to_dict())` gives an equal configuration."""
        out = dataclasses.asdict(self)
        out["datasets"] = [s.to_dict() for s in self.datasets]
        out["eval_datasets"] = [s.to_dict() for s in self.eval_datasets]
        if isinstance(self.target_modules, tuple):
            out["target_modules"] = list(self.target_modules)
        return out

    # --- validation -------------------------------------------------------------

    def validate(self) -> None:
        """Raise `ConfigError` naming the first wrong field."""
        if not isinstance(self.base_model, str) or not self.base_model:
            raise ConfigError("base_model", "must be a local model folder path")
        if not self.datasets:
            raise ConfigError("datasets", "name at least one training dataset")
        _choice("method", self.method, METHODS)
        _choice("lr_schedule", self.lr_schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("attn_implementation", self.attn_implementation, ("sdpa", "eager"))
        _int("lora_r", self.lora_r, minimum=1)
        _auto_or_number("lora_alpha", self.lora_alpha, minimum=0.0, exclusive=True)
        _number("lora_dropout", self.lora_dropout, minimum=0.0, maximum=0.99)
        if self.target_modules != "auto" and (
            not isinstance(self.target_modules, tuple)
            or not self.target_modules
            or not all(isinstance(m, str) and m for m in self.target_modules)
        ):
            raise ConfigError("target_modules", 'must be "auto" or a non-empty list of module names')
        _auto_or_number("learning_rate", self.learning_rate, minimum=0.0, exclusive=True)
        if self.learning_rate != "auto" and float(self.learning_rate) > 1.0:
            raise ConfigError("learning_rate", "must be at most 1.0")
        if self.warmup_steps != "auto":
            _int("warmup_steps", self.warmup_steps, minimum=0)
        _number("weight_decay", self.weight_decay, minimum=0.0, maximum=1.0)
        _number("max_grad_norm", self.max_grad_norm, minimum=0.0)
        _number("adam_beta1", self.adam_beta1, minimum=0.0, maximum=0.999999)
        _number("adam_beta2", self.adam_beta2, minimum=0.0, maximum=0.999999)
        _number("adam_epsilon", self.adam_epsilon, minimum=0.0)
        _number("epochs", self.epochs, minimum=0.0, exclusive=True)
        if self.max_steps is not None:
            _int("max_steps", self.max_steps, minimum=1)
        if not isinstance(self.packing, bool):
            raise ConfigError("packing", "must be true or false")
        _int("batch_tokens", self.batch_tokens, minimum=16)
        _int("batch_size", self.batch_size, minimum=1)
        _int("gradient_accumulation", self.gradient_accumulation, minimum=1)
        if self.max_seq_len != "auto":
            _int("max_seq_len", self.max_seq_len, minimum=8)
            if self.packing and int(self.max_seq_len) > self.batch_tokens:
                raise ConfigError(
                    "max_seq_len",
                    f"({self.max_seq_len}) must not exceed batch_tokens ({self.batch_tokens}) when packing",
                )
        _int("seed", self.seed, minimum=0)
        if self.checkpoint_every is not None:
            _int("checkpoint_every", self.checkpoint_every, minimum=1)
        _int("keep_checkpoints", self.keep_checkpoints, minimum=1)
        _number("eval_fraction", self.eval_fraction, minimum=0.0, maximum=0.5)
        if self.eval_every is not None:
            _int("eval_every", self.eval_every, minimum=1)
        _int("max_eval_examples", self.max_eval_examples, minimum=1)
        _int("sample_prompts", self.sample_prompts, minimum=0)
        _int("sample_max_new_tokens", self.sample_max_new_tokens, minimum=1)
        for name, sources in (("datasets", self.datasets), ("eval_datasets", self.eval_datasets)):
            for index, source in enumerate(sources):
                where = f"{name}[{index}]"
                if not source.path:
                    raise ConfigError(f"{where}.path", "is required")
                _choice(f"{where}.layout", source.layout, LAYOUTS)
                _number(f"{where}.weight", source.weight, minimum=0.0, exclusive=True)
        if not isinstance(self.extra, dict):
            raise ConfigError("extra", "must be an object")

    # --- resolution -------------------------------------------------------------

    def resolve(
        self,
        *,
        model_type: str,
        max_position_embeddings: int | None,
        cuda_available: bool,
        bf16_supported: bool,
        total_steps: int | None = None,
    ) -> TrainingConfig:
        """Replace every ``"auto"`` by the value this run uses.

        `total_steps` (known once the data is tokenised) resolves the warmup;
        without it the warmup stays ``"auto"``.
        """
        changes: dict[str, Any] = {}
        if self.lora_alpha == "auto":
            changes["lora_alpha"] = float(2 * self.lora_r)
        if self.target_modules == "auto" and self.method != "full":
            modules = TARGET_MODULES_BY_MODEL_TYPE.get(model_type)
            if modules is None:
                raise ConfigError(
                    "target_modules",
                    f"no default for architecture {model_type!r}; name the modules to adapt",
                )
            changes["target_modules"] = modules
        if self.learning_rate == "auto":
            changes["learning_rate"] = 2e-5 if self.method == "full" else 2e-4
        if self.max_seq_len == "auto":
            context = max_position_embeddings or 1024
            length = min(context, 1024)
            if self.packing:
                length = min(length, self.batch_tokens)
            changes["max_seq_len"] = length
        elif max_position_embeddings and int(self.max_seq_len) > max_position_embeddings:
            raise ConfigError(
                "max_seq_len",
                f"({self.max_seq_len}) exceeds the model's context length ({max_position_embeddings})",
            )
        if self.precision == "auto":
            changes["precision"] = "bf16" if cuda_available and bf16_supported else "fp32"
        elif self.precision == "bf16" and not (cuda_available and bf16_supported) and cuda_available:
            raise ConfigError("precision", "bf16 was asked for but this GPU does not support it")
        if self.warmup_steps == "auto" and total_steps is not None:
            changes["warmup_steps"] = max(1, math.ceil(0.03 * total_steps)) if total_steps > 10 else 0
        return dataclasses.replace(self, **changes)

    @property
    def uses_adapter(self) -> bool:
        """True for LoRA and DoRA (the output is an adapter, not full weights)."""
        return self.method in ("lora", "dora")

    def fan_in_fan_out(self, model_type: str) -> bool:
        """Whether peft must treat the target layers as transposed (GPT-2's Conv1D)."""
        return model_type in FAN_IN_FAN_OUT_MODEL_TYPES


# --- helpers ----------------------------------------------------------------------


def _sources(value: Any, name: str) -> tuple[DataSource, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(name, "must be a list of {path, layout, weight, name} objects")
    out = []
    allowed = {f.name for f in dataclasses.fields(DataSource)}
    for index, item in enumerate(value):
        where = f"{name}[{index}]"
        if isinstance(item, DataSource):
            out.append(item)
            continue
        if isinstance(item, str):
            out.append(DataSource(path=item))
            continue
        if not isinstance(item, dict):
            raise ConfigError(where, "must be an object with a path")
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(allowed))})")
        if "path" not in item:
            raise ConfigError(f"{where}.path", "is required")
        out.append(DataSource(**item))
    return tuple(out)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(name, f"{value!r} is not one of {', '.join(choices)}")


def _int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")


def _number(
    name: str, value: Any, *, minimum: float, maximum: float | None = None, exclusive: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value!r}")
    if value < minimum or (exclusive and value == minimum):
        raise ConfigError(name, f"must be {'above' if exclusive else 'at least'} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be at most {maximum}, got {value}")


def _auto_or_number(name: str, value: Any, *, minimum: float, exclusive: bool = False) -> None:
    if value == "auto":
        return
    _number(name, value, minimum=minimum, exclusive=exclusive)
