"""Merge a LoRA/DoRA adapter into its base model's weights (a full model folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def merge_adapter(base_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Load the base and the adapter, fold the adapter into the weights, save as safetensors.

    The merged folder holds the full model and the base's tokenizer. Returns
    the folder and the sha256 of every file in it.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from customization.training.recipe import digest_tree

    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32, local_files_only=True)
    model = PeftModel.from_pretrained(base, str(adapter_dir), local_files_only=True)
    merged = model.merge_and_unload()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True).save_pretrained(str(out))
    return {"path": str(out), "files": digest_tree(out)}
