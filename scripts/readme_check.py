"""Run every shell block of README.md, as written, against a running `make run`.

Each block runs in one fresh bash (no SECRET_KEY, DEBUG or Django variables:
a new terminal), from the repository root, one after the other, so variables
set in one block (TOKEN=...) are there in the next, as in a reader's shell.
Every `curl` is checked: a 2xx status, or the status its comment names
(``# 403: ...``); every other command must exit 0. The block with `make run`
itself is skipped (it is what is running). Before the blocks run, the demo's
PII scan of claims-2024 v1 is awaited (make run queues it; the PII examples
review its findings).

Usage: scripts/readme_check.sh [README.md]   (PORT: the server's port, 8000)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
EXPECTED = re.compile(r"#\s*([1-5]\d\d)\b")

PRELUDE = r"""
checked=0; failed=0
curl() {
  local out code expect="${EXPECT:-2xx}"
  out=$(mktemp)
  code=$(command curl "$@" -o "$out" -w '%{http_code}') || code="000"
  checked=$((checked + 1))
  if [[ "$code" == "$expect" || ( "$expect" == 2xx && "$code" == 2?? ) ]]; then
    echo "  ok    $code  $(head -c 160 "$out" | tr '\n' ' ')"
  else
    failed=$((failed + 1))
    echo "  FAIL  $code (expected $expect): curl $*"
    echo "        $(head -c 600 "$out" | tr '\n' ' ')"
  fi
  rm -f "$out"
}
run() {  # any other command: must exit 0
  checked=$((checked + 1))
  if "$@" > /tmp/readme-check-out 2>&1; then
    echo "  ok    exit 0  $(tail -n 2 /tmp/readme-check-out | tr '\n' ' ' | head -c 200)"
  else
    failed=$((failed + 1))
    echo "  FAIL  exit $?: $*"
    sed 's/^/        /' /tmp/readme-check-out | tail -n 15
  fi
}
"""


def logical_lines(block: str) -> list[str]:
    """The block's commands, with backslash continuations joined and comment-only lines dropped."""
    commands, current = [], ""
    for line in block.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        commands.append(current + line)
        current = ""
    return commands


def instrument(command: str) -> str:
    """A command as the check runs it: curl with its expected status, others through run()."""
    stripped = command.strip()
    code_part, _, comment = stripped.partition("  #")
    if re.match(r"^[A-Z_]+=", stripped):  # a variable, e.g. TOKEN=$(awk ...)
        return stripped
    if stripped.startswith("curl "):
        expected = EXPECTED.search("#" + comment)
        prefix = f"EXPECT={expected.group(1)} " if expected else ""
        return f"echo {shlex.quote('$ ' + code_part.strip()[:150])}\n{prefix}{code_part.strip()}"
    return f"echo {shlex.quote('$ ' + code_part.strip()[:150])}\nrun {code_part.strip()}"


def wait_for_demo_scan(port: str, timeout: float = 900) -> None:
    """make run queues the demo versions' PII scans; the PII examples review claims-2024 v1's findings."""
    tokens = dict(
        line.split(": ", 1) for line in (ROOT / "var" / "demo-tokens.txt").read_text().splitlines() if ": " in line
    )
    url = f"http://127.0.0.1:{port}/api/v1/datasets/claims-2024/versions/1/pii/scans/"
    request = urllib.request.Request(url, headers={"Authorization": f"Token {tokens['admin']}"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
        scans = body.get("results", body) if isinstance(body, dict) else body
        if scans and all(scan["status"] not in {"queued", "running"} for scan in scans):
            print(f"demo scan of claims-2024 v1: {scans[0]['status']}")
            return
        time.sleep(3)
    raise SystemExit(f"the demo scan of claims-2024 v1 did not finish in {timeout:.0f}s: is the worker running?")


def main() -> int:
    """Run the README's blocks; exit 1 when a command failed."""
    readme = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "README.md"
    port = os.environ.get("PORT", "8000")
    text = readme.read_text().replace("127.0.0.1:8000", f"127.0.0.1:{port}")  # the examples name port 8000
    blocks = [block for block in BLOCK.findall(text) if "make run" not in block]
    wait_for_demo_scan(port)
    script = [PRELUDE]
    for number, block in enumerate(blocks, start=1):
        script.append(f"echo; echo '== block {number}'")
        script.extend(instrument(command) for command in logical_lines(block))
    script.append('echo; echo "README check: $checked commands, $failed failed"; [ "$failed" -eq 0 ]')
    fresh = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    return subprocess.run(["bash", "-c", "\n".join(script)], cwd=ROOT, env=fresh).returncode


if __name__ == "__main__":
    sys.exit(main())
