"""What ships: each package exports exactly what other packages import from it, and the wheel
and the service image carry the services only, not the tooling (devtools, bench, tests)."""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGES = ("shared", "producer_service", "consumer_service", "zones_service")
_TOOLING = ("devtools", "bench", "tests")


def _imported_from(package: str) -> set[str]:
    """The names every module outside `package` imports with `from <package> import ...`."""
    inside = package.replace(".", "/")
    names: set[str] = set()
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0].startswith(".") or relative.as_posix().startswith(inside + "/"):
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == package:
                names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_exports_exactly_what_other_packages_import_from_it(package: str) -> None:
    exported = set(getattr(importlib.import_module(package), "__all__", ()))
    imported = _imported_from(package)
    assert not imported - exported, f"imported from {package} but not in its __all__"
    assert not exported - imported, f"in {package}.__all__ but imported by no other package"


def test_the_wheel_carries_the_services_and_not_the_tooling(tmp_path: Path) -> None:
    # Built from a copy of the tracked files: setuptools leaves build/ beside the sources.
    source = tmp_path / "source"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist() if ".dist-info/" not in name}
    assert tops == {"shared", "producer_service", "consumer_service", "zones_service"}


def test_the_image_copies_no_tooling() -> None:
    copied = re.findall(r"^COPY (.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    sources = {source.rstrip("/") for line in copied for source in line.split()}
    assert sources >= {"shared", "producer_service", "consumer_service", "zones_service"}
    assert not sources & set(_TOOLING)
