"""TrainingConfig: validation names the field, auto values resolve per architecture and hardware."""

from __future__ import annotations

from typing import Any

import pytest

from customization.training.config import ConfigError, TrainingConfig

pytestmark = pytest.mark.no_database


def _base(**overrides: Any) -> dict[str, Any]:
    return {"base_model": "/models/base", "datasets": [{"path": "/data/a.jsonl", "weight": 2}], **overrides}


def test_config_round_trips_through_a_plain_dict() -> None:
    config = TrainingConfig.from_dict(_base(target_modules=["q_proj", "v_proj"], eval_datasets=["/data/e.jsonl"]))
    assert TrainingConfig.from_dict(config.to_dict()) == config
    assert config.datasets[0].weight == 2
    assert config.eval_datasets[0].path == "/data/e.jsonl"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"method": "qlora"}, "method"),
        ({"lora_r": 0}, "lora_r"),
        ({"lora_r": 4.5}, "lora_r"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"epochs": 0}, "epochs"),
        ({"max_steps": 0}, "max_steps"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"precision": "fp8"}, "precision"),
        ({"gradient_accumulation": 0}, "gradient_accumulation"),
        ({"eval_fraction": 0.9}, "eval_fraction"),
        ({"target_modules": []}, "target_modules"),
        ({"max_seq_len": 8192, "batch_tokens": 4096}, "max_seq_len"),
        ({"batch_tokens": True}, "batch_tokens"),
        ({"datasets": []}, "datasets"),
        ({"datasets": [{"path": "/a", "weight": 0}]}, "datasets[0].weight"),
        ({"datasets": [{"path": "/a", "layout": "csv"}]}, "datasets[0].layout"),
        ({"datasets": [{"weight": 1}]}, "datasets[0].path"),
        ({"datasets": [{"path": "/a", "colour": "red"}]}, "datasets[0].colour"),
        ({"learning_rat": 1e-4}, "learning_rat"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as error:
        TrainingConfig.from_dict(_base(**overrides))
    assert error.value.field == field
    assert str(error.value).startswith(field + ":")


def test_a_missing_base_model_is_named() -> None:
    with pytest.raises(ConfigError) as error:
        TrainingConfig.from_dict({"datasets": ["/a.jsonl"]})
    assert error.value.field == "base_model"


def test_auto_values_resolve_for_a_llama_on_cpu() -> None:
    config = TrainingConfig.from_dict(_base()).resolve(
        model_type="llama", max_position_embeddings=2048, cuda_available=False, bf16_supported=False,
        total_steps=100,
    )
    assert config.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert config.lora_alpha == 16.0
    assert config.learning_rate == 2e-4
    assert config.precision == "fp32"
    assert config.max_seq_len == 1024
    assert config.warmup_steps == 3
    assert not config.fan_in_fan_out("llama")


def test_auto_values_resolve_for_gpt2_and_a_bf16_gpu() -> None:
    config = TrainingConfig.from_dict(_base(method="full")).resolve(
        model_type="gpt2", max_position_embeddings=1024, cuda_available=True, bf16_supported=True,
    )
    assert config.precision == "bf16"
    assert config.learning_rate == 2e-5
    lora = TrainingConfig.from_dict(_base()).resolve(
        model_type="gpt2", max_position_embeddings=1024, cuda_available=False, bf16_supported=False,
    )
    assert lora.target_modules == ("c_attn", "c_proj")
    assert lora.fan_in_fan_out("gpt2")


def test_lora_on_an_unknown_architecture_asks_for_target_modules() -> None:
    with pytest.raises(ConfigError) as error:
        TrainingConfig.from_dict(_base()).resolve(
            model_type="mamba", max_position_embeddings=None, cuda_available=False, bf16_supported=False
        )
    assert error.value.field == "target_modules"


def test_a_sequence_longer_than_the_model_context_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        TrainingConfig.from_dict(_base(max_seq_len=4096)).resolve(
            model_type="llama", max_position_embeddings=512, cuda_available=False, bf16_supported=False
        )
    assert error.value.field == "max_seq_len"


def test_a_json_syntax_error_names_the_file_and_line(tmp_path: Any) -> None:
    path = tmp_path / "cfg.json"
    path.write_text('{\n "base_model": "x",\n "datasets": [,]\n}')
    with pytest.raises(ConfigError) as error:
        TrainingConfig.from_json_file(str(path))
    assert f"{path} line 3" in str(error.value)
