"""Checkpoints that hold everything a run needs to resume exactly.

A checkpoint is a folder ``<out>/checkpoints/step-<N>/`` with:

- ``trainable.safetensors``: every trainable parameter (the adapter, or all
  weights for a full fine-tune), by its name in the unwrapped model;
- ``optimizer.pt`` and ``scheduler.pt``: their state dicts;
- ``rng-<rank>.pt``: each rank's Python and torch (CPU and CUDA) RNG states;
- ``state.json``: the step (optimizer steps done), world size, the run's
  bookkeeping (base eval loss, last loss) and the resolved configuration.

It is written under a temporary name and renamed into place only when
complete, then ``latest`` (a one-line file) is replaced atomically: a run
killed mid-write resumes from the previous complete checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CHECKPOINTS = "checkpoints"
LATEST = "latest"


def checkpoint_root(out_dir: str | Path) -> Path:
    """Where a run's checkpoints live."""
    return Path(out_dir) / CHECKPOINTS


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    pointer = checkpoint_root(out_dir) / LATEST
    if not pointer.is_file():
        return None
    path = checkpoint_root(out_dir) / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters by name (detached CPU copies)."""
    return {
        name: param.detach().to("cpu").contiguous().clone()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def _barrier(world_size: int) -> None:
    if world_size > 1:
        torch.distributed.barrier()


def save_checkpoint(
    out_dir: str | Path,
    *,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    rank: int,
    world_size: int,
    keep: int,
) -> Path:
    """Write a complete checkpoint for `step` (collective: every rank calls it)."""
    root = checkpoint_root(out_dir)
    final = root / f"step-{step:08d}"
    temporary = root / f".step-{step:08d}.tmp"
    if rank == 0:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
    _barrier(world_size)
    rng: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save(rng, temporary / f"rng-{rank}.pt")
    if rank == 0:
        save_file(trainable_state(model), str(temporary / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), temporary / "optimizer.pt")
        torch.save(scheduler.state_dict(), temporary / "scheduler.pt")
    _barrier(world_size)
    if rank == 0:
        (temporary / "state.json").write_text(
            json.dumps({**state, "step": step, "world_size": world_size}, sort_keys=True, indent=1)
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        pointer = root / (LATEST + ".tmp")
        pointer.write_text(final.name)
        os.replace(pointer, root / LATEST)
        kept = sorted(p for p in root.glob("step-*") if p.is_dir())
        for old in kept[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier(world_size)
    return final


def read_state(path: Path) -> dict[str, Any]:
    """A checkpoint's state.json."""
    state: dict[str, Any] = json.loads((path / "state.json").read_text())
    return state


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rank: int,
    world_size: int,
) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and this rank's RNG; returns the state dict."""
    state = read_state(path)
    if state["world_size"] != world_size:
        raise ValueError(
            f"checkpoint {path} was written by {state['world_size']} processes; "
            f"resume it with the same number (this run has {world_size})"
        )
    saved = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [name for name, p in params.items() if p.requires_grad and name not in saved]
    if missing:
        raise ValueError(f"checkpoint {path} lacks trainable parameter {missing[0]}")
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor.to(params[name].device))
    device = next(model.parameters()).device
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=device, weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng = torch.load(path / f"rng-{rank}.pt", weights_only=False)
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return state
