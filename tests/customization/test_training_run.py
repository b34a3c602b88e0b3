"""The command-line entry point, alone and as a two-process DDP job under torchrun (gloo, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from customization.training.metrics import read_events

pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    # one thread per process: the machine's cores are shared; the worktree's packages first
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def _write_config(path: Path, base: Path, data: Path, **overrides: object) -> Path:
    config = {"base_model": str(base), "datasets": [{"path": str(data)}], "max_steps": 10,
              "batch_tokens": 128, "learning_rate": 1e-2, "sample_prompts": 1, "sample_max_new_tokens": 4,
              **overrides}
    path.write_text(json.dumps(config))
    return path


@pytest.mark.slow
def test_two_process_ddp_job_lowers_the_loss_and_keeps_both_ranks_identical(
    tiny_base: Path, support_data: Path, tmp_path: Path
) -> None:
    config = _write_config(tmp_path / "cfg.json", tiny_base, support_data, gradient_accumulation=2)
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "customization.training.run", "--config", str(config), "--out", str(out)],
        env=_env(), capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    digests = result["metrics"]["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    events = read_events(out / "metrics.jsonl")
    start = next(e for e in events if e["type"] == "start")
    assert start["world_size"] == 2
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert len(losses) == 10
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert result["metrics"]["eval_loss"] < result["metrics"]["base_eval_loss"]


@pytest.mark.slow
def test_the_entry_point_refuses_a_bad_config_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"base_model": "/nowhere", "datasets": ["/x.jsonl"], "lora_r": -1}))
    completed = subprocess.run(
        [sys.executable, "-m", "customization.training.run", "--config", str(config), "--out", str(tmp_path / "o")],
        env=_env(), capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert completed.returncode == 2
    assert "lora_r: must be at least 1" in completed.stderr
    assert json.loads((tmp_path / "o" / "error.json").read_text())["error"] == "ConfigError"


@pytest.mark.slow
def test_the_entry_point_trains_alone_and_prints_its_result(
    tiny_base: Path, support_data: Path, tmp_path: Path
) -> None:
    config = _write_config(tmp_path / "cfg.json", tiny_base, support_data, max_steps=3)
    completed = subprocess.run(
        [sys.executable, "-m", "customization.training.run", "--config", str(config), "--out", str(tmp_path / "o")],
        env=_env(), capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1])["steps"] == 3
