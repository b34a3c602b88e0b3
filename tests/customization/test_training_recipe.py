"""The recipe end to end on a tiny model: LoRA/DoRA/full, resume after a crash, cancel, metrics, merge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from customization.training.config import TrainingConfig
from customization.training.merge import merge_adapter
from customization.training.metrics import JsonlMetricsLogger, read_events
from customization.training.recipe import SimulatedCrash, sha256_file, train

pytestmark = pytest.mark.no_database


def _config(base: Path, data: Path, **overrides: Any) -> TrainingConfig:
    values: dict[str, Any] = {
        "base_model": str(base), "datasets": [{"path": str(data), "name": "support v1"}],
        "max_steps": 8, "batch_tokens": 256, "learning_rate": 1e-2, "seed": 3,
        "sample_prompts": 2, "sample_max_new_tokens": 8, **overrides,
    }
    return TrainingConfig.from_dict(values)


def test_lora_run_lowers_the_eval_loss_and_saves_an_adapter_with_digests(
    tiny_base: Path, support_data: Path, tmp_path: Path
) -> None:
    events: list[dict[str, Any]] = []
    out = tmp_path / "run"
    logger = JsonlMetricsLogger(out / "metrics.jsonl", callback=events.append)
    result = train(_config(tiny_base, support_data, max_steps=12), out, logger=logger)
    logger.close()
    assert result.status == "succeeded" and result.steps == 12
    metrics = result.metrics
    assert metrics["eval_loss"] < metrics["base_eval_loss"]
    assert metrics["perplexity"] == pytest.approx(2.718281828 ** metrics["eval_loss"], rel=1e-6)
    assert set(result.files) >= {"adapter_model.safetensors", "adapter_config.json"}
    for name, digest in result.files.items():
        assert sha256_file(out / "model" / name) == digest
    assert len(result.samples) == 2 and all(s["prompt"].startswith("Customer:") for s in result.samples)
    assert json.loads((out / "result.json").read_text())["files"] == result.files
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 13))
    assert {"loss", "lr", "grad_norm", "tokens_per_second", "tokens"} <= set(steps[0])
    assert read_events(out / "metrics.jsonl") == events  # the file and the callback see the same events
    assert steps[0]["lr"] > steps[-1]["lr"]  # cosine decay
    assert result.config["target_modules"][0] == "q_proj" and result.config["precision"] == "fp32"


@pytest.mark.slow
@pytest.mark.parametrize(("method", "weights_file"), [("dora", "adapter_model.safetensors"), ("full", "model.safetensors")])
def test_dora_and_full_runs_train_and_save_their_weights(
    tiny_base: Path, support_data: Path, tmp_path: Path, method: str, weights_file: str
) -> None:
    result = train(_config(tiny_base, support_data, method=method, max_steps=6,
                           learning_rate=1e-2 if method == "dora" else 3e-3), tmp_path / method)
    assert result.metrics["eval_loss"] < result.metrics["base_eval_loss"]
    assert weights_file in result.files
    if method == "dora":
        assert json.loads((tmp_path / method / "model" / "adapter_config.json").read_text())["use_dora"] is True
    else:
        assert "tokenizer.json" in result.files


def test_lora_on_gpt2_targets_its_conv1d_layers(tiny_base: Path, support_data: Path, tmp_path: Path) -> None:
    base = tmp_path / "gpt2"
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base))
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=64, n_layer=2, n_head=4,
                               bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    result = train(_config(base, support_data, max_steps=4), tmp_path / "run")
    adapter = json.loads((tmp_path / "run" / "model" / "adapter_config.json").read_text())
    assert adapter["fan_in_fan_out"] is True
    assert sorted(adapter["target_modules"]) == ["c_attn", "c_proj"]
    assert result.metrics["eval_loss"] < result.metrics["base_eval_loss"]


def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_final_weights(
    tiny_base: Path, support_data: Path, tmp_path: Path
) -> None:
    # dropout and accumulation make the RNG state and the data position matter
    config = _config(tiny_base, support_data, max_steps=8, checkpoint_every=3, lora_dropout=0.1,
                     gradient_accumulation=2, batch_tokens=128, sample_prompts=0)
    whole = train(config, tmp_path / "whole")

    def crash_after_step_5(step: int) -> None:
        if step == 5:
            raise SimulatedCrash("worker killed")

    with pytest.raises(SimulatedCrash):
        train(config, tmp_path / "killed", on_step=crash_after_step_5)
    assert (tmp_path / "killed" / "checkpoints" / "latest").read_text() == "step-00000003"
    resumed = train(config, tmp_path / "killed")
    assert resumed.steps == whole.steps == 8
    events = read_events(tmp_path / "killed" / "metrics.jsonl")
    assert [e["resumed_from_step"] for e in events if e["type"] == "start"] == [None, 3]
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3, 4, 5, 4, 5, 6, 7, 8]
    whole_weights = load_file(str(tmp_path / "whole" / "model" / "adapter_model.safetensors"))
    resumed_weights = load_file(str(tmp_path / "killed" / "model" / "adapter_model.safetensors"))
    assert whole_weights.keys() == resumed_weights.keys()
    for name in whole_weights:
        assert torch.equal(whole_weights[name], resumed_weights[name]), name
    assert resumed.metrics["eval_loss"] == whole.metrics["eval_loss"]
    assert resumed.metrics["base_eval_loss"] == whole.metrics["base_eval_loss"]
    state = json.loads((tmp_path / "killed" / "checkpoints" / "step-00000006" / "state.json").read_text())
    assert state["step"] == 6 and state["data_position"]["micro_batches_per_step"] == 2


def test_a_finished_run_delivered_again_returns_its_result_without_training(
    tiny_base: Path, support_data: Path, tmp_path: Path
) -> None:
    config = _config(tiny_base, support_data, max_steps=2, sample_prompts=0)
    first = train(config, tmp_path / "run")
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().count("\n")
    again = train(config, tmp_path / "run")
    assert again == first
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == lines  # no step ran


def test_cancel_stops_at_the_next_step_and_keeps_the_last_checkpoint(
    tiny_base: Path, support_data: Path, tmp_path: Path
) -> None:
    done: list[int] = []
    result = train(_config(tiny_base, support_data, max_steps=10, checkpoint_every=2), tmp_path / "run",
                   on_step=done.append, should_cancel=lambda: len(done) >= 5)
    assert result.status == "cancelled" and result.steps == 5
    assert not (tmp_path / "run" / "model").exists()
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text() == "step-00000004"
    assert read_events(tmp_path / "run" / "metrics.jsonl")[-1] == {**read_events(tmp_path / "run" / "metrics.jsonl")[-1], "type": "cancelled", "step": 5}


def test_resuming_with_another_configuration_is_refused(tiny_base: Path, support_data: Path, tmp_path: Path) -> None:
    train(_config(tiny_base, support_data, max_steps=2, checkpoint_every=2, sample_prompts=0), tmp_path / "run")
    with pytest.raises(RuntimeError, match="another configuration"):
        train(_config(tiny_base, support_data, max_steps=4, checkpoint_every=2), tmp_path / "run")


def test_a_merged_adapter_gives_the_same_outputs_as_base_plus_adapter(
    tiny_base: Path, support_data: Path, tmp_path: Path
) -> None:
    from peft import PeftModel

    train(_config(tiny_base, support_data, max_steps=4, sample_prompts=0), tmp_path / "run")
    merged = merge_adapter(tiny_base, tmp_path / "run" / "model", tmp_path / "merged")
    assert "model.safetensors" in merged["files"] and "tokenizer.json" in merged["files"]
    ids = torch.tensor([[1, 40, 41, 42, 43, 44]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(str(tiny_base))
        adapted = PeftModel.from_pretrained(base, str(tmp_path / "run" / "model")).eval()(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(str(tiny_base)).eval()(input_ids=ids).logits
        folded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged")).eval()(input_ids=ids).logits
    assert not torch.allclose(adapted, plain, atol=1e-4)  # the adapter changed something
    assert torch.allclose(folded, adapted, atol=1e-5)


def test_chat_data_trains_and_samples_from_the_chat_template(
    tiny_base: Path, chat_data: Path, tmp_path: Path
) -> None:
    result = train(_config(tiny_base, chat_data, max_steps=4, eval_fraction=0.2), tmp_path / "run")
    assert result.samples[0]["prompt"].startswith("<|system|>\nYou are a helpful insurance agent.<|end|>\n<|user|>")
    assert result.samples[0]["prompt"].endswith("<|assistant|>\n")
    assert result.metrics["eval_loss"] < result.metrics["base_eval_loss"]
