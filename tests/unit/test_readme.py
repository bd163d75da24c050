"""The README's settings table is the reference users read: it must list exactly the settings."""

from __future__ import annotations

import re

from shared.settings import Settings
from tests.support import ROOT


def test_the_readme_documents_every_setting_with_its_variable() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| `(BIOMETRICS_\w+)` \|", readme, flags=re.MULTILINE)
    documented = {(section, key) for section, key, _ in rows}
    fields = {
        (section, key)
        for section, info in Settings.model_fields.items()
        for key in info.annotation.model_fields  # type: ignore[union-attr]
    }
    assert documented == fields
    for section, key, variable in rows:
        assert variable == f"BIOMETRICS_{section.upper()}__{key.upper()}"


def test_the_layout_section_names_every_module_of_the_tree_and_nothing_else() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    listed: set[str] = set()
    folders: list[str] = []  # the folder of each indentation level
    for line in block.splitlines():
        name = line.strip().split(" ", 1)[0]
        if not name:
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        folders[depth:] = [name] if name.endswith("/") else []
        if name.endswith(".py"):
            listed.add("".join(folders[:depth]) + name)
    packages = ("shared", "producer_service", "consumer_service", "zones_service")
    packages += ("devtools", "bench")
    modules = {
        path.relative_to(ROOT).as_posix()
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py"
    }
    assert listed == modules
