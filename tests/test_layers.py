"""The layers of DESIGN.md hold: import-linter's contract in pyproject.toml is kept, and it bites.

The contract (``[tool.importlinter]``) lists the layers top to bottom; a module may import only
from the rows below its own. The second test copies the package, adds one upward import (the core
importing analysis) and demands that the same contract then fails, naming that import: a contract
that lists the wrong modules, or none, would pass the first test but not this one. The contract is
exhaustive: a new module of the package must be placed in a layer (the third test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")  # requirements.txt installs it


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contract, on the ``rlcomp`` in ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache",
                           "--no-logo"], cwd=package_parent, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_layer_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def copy_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "rlcomp", tmp_path / "rlcomp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.parametrize(("module", "upward"), [
    ("nets.py", "rlcomp.analysis"),  # the core imports the top of the analysis
    ("checkpoint.py", "rlcomp.agents.train"),  # the core imports a layer above it
    ("compress/registry.py", "rlcomp.agents.common"),  # siblings on one row
    ("probes/size.py", "rlcomp.experiments.store"),  # a layer imports the one above it
])
def test_an_upward_import_breaks_the_contract(tmp_path, module, upward):
    parent = copy_package(tmp_path)
    path = parent / "rlcomp" / module
    path.write_text(path.read_text() + f"\nimport {upward}  # noqa: E402,F401\n")
    result = lint_imports(parent)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout and "0 kept, 1 broken" in result.stdout
    importer = "rlcomp." + module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {upward}" in result.stdout, result.stdout


def test_a_module_outside_the_table_breaks_the_contract(tmp_path):
    parent = copy_package(tmp_path)
    (parent / "rlcomp" / "helpers.py").write_text('"""Belongs to no layer."""\n')
    result = lint_imports(parent)
    assert result.returncode != 0, result.stdout
    assert "not listed as layers" in result.stdout and "rlcomp.helpers" in result.stdout
