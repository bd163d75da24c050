"""The layout of `shared/` is held here, as httpx holds its exported names: each folder's
`__all__` lists its modules, each module's `__all__` lists what the rest of the project imports
from it, and nothing outside a module imports a name it does not export."""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"
PACKAGES = ["contracts", "kafka", "runtime"]
# Everything of the project that may import from shared.
IMPORTERS = [
    "shared",
    "producer_service",
    "consumer_service",
    "zones_service",
    "devtools",
    "bench",
    "tests",
]


def _modules(package: str) -> list[str]:
    return sorted(p.stem for p in (SHARED / package).glob("*.py") if p.stem != "__init__")


def _imports_from_shared() -> dict[str, set[tuple[str, str]]]:
    """For each shared module, the (name, importing file) pairs of `from shared.x.y import name`."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for folder in IMPORTERS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shared."):
                    for alias in node.names:
                        found[node.module or ""].add((alias.name, str(path.relative_to(ROOT))))
    return found


def test_shared_has_exactly_the_three_folders_and_no_loose_modules() -> None:
    loose = sorted(p.name for p in SHARED.glob("*.py") if p.name != "__init__.py")
    folders = sorted(p.name for p in SHARED.iterdir() if (p / "__init__.py").exists())
    assert (loose, folders) == ([], PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_folder_lists_its_modules(package: str) -> None:
    assert sorted(importlib.import_module(f"shared.{package}").__all__) == _modules(package)


@pytest.mark.parametrize(
    "module", [f"shared.{package}.{name}" for package in PACKAGES for name in _modules(package)]
)
def test_each_module_exports_exactly_what_the_project_imports_from_it(module: str) -> None:
    exported = importlib.import_module(module).__all__
    imported = {name for name, path in _imports_from_shared()[module]}
    assert len(exported) == len(set(exported))
    assert sorted(exported) == sorted(imported), (
        f"{module}: exported but imported nowhere: {sorted(set(exported) - imported)}; "
        f"imported but not exported: {sorted(imported - set(exported))}"
    )


def test_no_module_outside_shared_is_imported_by_the_name_of_a_former_flat_module() -> None:
    imported = _imports_from_shared()
    flat = sorted(m for m in imported if m.count(".") == 1)
    assert flat == []
