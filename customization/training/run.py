"""Command-line entry point for one fine-tune run, alone or under torchrun.

    python -m customization.training.run --config cfg.json --out DIR
    torchrun --nproc-per-node 2 -m customization.training.run --config cfg.json --out DIR

Resumes from ``DIR/checkpoints/latest`` when present (``--no-resume`` starts
over). Events go to ``DIR/metrics.jsonl``; the result to ``DIR/result.json``.
``--cancel-file F``: the run stops at the next step once F exists. Exit
status: 0 succeeded or cancelled, 2 bad configuration or data (the reason on
stderr and in ``DIR/error.json``), 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from customization.training.config import ConfigError, TrainingConfig


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run `train`, print the result as JSON (rank 0)."""
    parser = argparse.ArgumentParser(description="Run one Pedigree fine-tune.")
    parser.add_argument("--config", required=True, help="the TrainingConfig as a JSON file")
    parser.add_argument("--out", required=True, help="output folder (checkpoints, model, metrics)")
    parser.add_argument("--cancel-file", help="stop at the next step once this file exists")
    parser.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rank = int(os.environ.get("RANK", "0"))
    cancel_file = Path(args.cancel_file) if args.cancel_file else None
    try:
        config = TrainingConfig.from_json_file(args.config)
    except ConfigError as error:
        return _fail(out, rank, error)
    # imported only now: a bad configuration is refused without loading torch
    from customization.training.data import DataError
    from customization.training.recipe import TrainingError, train

    try:
        result = train(
            config, out, resume=not args.no_resume,
            should_cancel=(lambda: cancel_file.exists()) if cancel_file else None,
        )
    except (ConfigError, DataError, TrainingError) as error:
        return _fail(out, rank, error)
    if rank == 0:
        print(json.dumps(result.to_dict(), sort_keys=True))
    return 0


def _fail(out: Path, rank: int, error: Exception) -> int:
    """Report a deterministic failure (bad configuration or data) and return exit status 2."""
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        kind = type(error).__name__
        (out / "error.json").write_text(json.dumps({"error": kind, "message": str(error)}))
        print(f"{kind}: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
