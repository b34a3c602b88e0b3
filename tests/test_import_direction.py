"""Which way the imports point (DESIGN.md, "Which way the arrows point").

``policies`` is below ``serving``, ``customization`` and the API: none of its
modules imports them, at module level or inside a function (consumers become
principals because ``serving`` registers them in its ``AppConfig.ready()``).
``governance.pii`` is below the catalog's services, its tasks and the API: it
never imports them at module level, and calls back up only from the few
places listed here, each of which says why.

Read from the source with ``ast`` (every ``import`` statement, wherever it
stands), so an import hidden inside a function counts too. Needs no database.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

POLICIES_MUST_NOT_IMPORT = ("serving", "customization", "governance.api")
PII_MUST_NOT_IMPORT = ("serving", "customization", "governance.api", "policies")
PII_ABOVE = ("governance.services", "governance.tasks")
# (module, imported module): the calls back up that governance.pii still makes,
# each from inside one function (see the comment beside each).
PII_KNOWN_CALLS_UP = {
    ("governance/pii/scans.py", "governance.tasks"),  # enqueue a scan by its task
    ("governance/pii/redactions.py", "governance.tasks"),  # enqueue a redaction by its task
    ("governance/pii/redactions.py", "governance.services"),  # next_version, until one record_dataset_version
}


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """Every module ``path`` imports: (name, at module level, line)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    found: list[tuple[str, bool, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top_level, node.lineno))
            # "from serving import models" names serving.models
            found += [(f"{node.module}.{alias.name}", id(node) in top_level, node.lineno) for alias in node.names]
    return found


def _under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def _files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found under {package}"
    return files


def test_imports_are_read_from_function_bodies_too(tmp_path: Path) -> None:
    """The checker itself: an import inside a function, and one of a submodule, are seen."""
    module = tmp_path / "sample.py"
    module.write_text("import os\n\ndef f():\n    from serving import models\n    import customization.tasks\n")
    names = {(name, top) for name, top, _ in _imports(module)}
    assert ("os", True) in names
    assert ("serving.models", False) in names
    assert ("customization.tasks", False) in names


@pytest.mark.parametrize("path", _files("policies"), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_policies_module_imports_an_app_above_it(path: Path) -> None:
    wrong = [f"line {line}: {name}" for name, _, line in _imports(path) if _under(name, POLICIES_MUST_NOT_IMPORT)]
    assert not wrong, f"{path.relative_to(ROOT)} imports a layer above policies: {wrong}"


# The admin console is the top layer (it may call several apps).
PII_MODULES = [path for path in _files("governance/pii") if path.name != "admin.py"]


@pytest.mark.parametrize("path", PII_MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_pii_module_imports_a_layer_above_it(path: Path) -> None:
    relative = str(path.relative_to(ROOT))
    wrong = []
    for name, top_level, line in _imports(path):
        if _under(name, PII_MUST_NOT_IMPORT):
            wrong.append(f"line {line}: {name}")
        elif _under(name, PII_ABOVE):
            package = next(above for above in PII_ABOVE if _under(name, (above,)))
            if top_level or (relative, package) not in PII_KNOWN_CALLS_UP:
                wrong.append(f"line {line}: {name}" + (" (at module level)" if top_level else " (a new call back up)"))
    assert not wrong, f"{relative} imports a layer above governance.pii: {wrong}"


def test_policies_loads_without_serving_and_serving_registers_consumers() -> None:
    """In a fresh interpreter: importing the policy engine's modules loads no
    higher app, and once Django is set up, serving has registered consumers."""
    script = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'pedigree.settings')\n"
        "import policies.loading, policies.owner_rules, policies.requests, policies.evaluator\n"
        "import policies.store, policies.explain, policies.principals, policies.testing\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('serving', 'customization', 'governance'))\n"
        "assert not loaded, loaded\n"
        "import django\n"
        "django.setup()\n"
        "from policies.principals import principal_kind\n"
        "from serving.models import Consumer\n"
        "assert principal_kind('Consumer').model is Consumer\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
