"""The README and the manual in docs/ are what users read: the settings table must list exactly
the settings, the layout exactly the modules, and every link between them must lead somewhere."""

from __future__ import annotations

import re

from shared.runtime.settings import Settings
from tests.support import ROOT

DOCS = ROOT / "docs"


def test_the_configuration_document_lists_every_setting_with_its_variable() -> None:
    manual = (DOCS / "configuration.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| `(BIOMETRICS_\w+)` \|", manual, flags=re.MULTILINE)
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
    manual = (DOCS / "development.md").read_text(encoding="utf-8")
    block = manual.split("## Layout", 1)[1].split("```", 2)[1]
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


def test_every_link_of_the_readme_and_the_manual_leads_to_a_file_and_heading_that_exist() -> None:
    documents = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
    broken = []
    for document in documents:
        text = document.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"https?://", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            if not linked.is_file():
                broken.append(f"{document.name}: {target}")
            elif anchor and anchor not in _anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{document.name}: {target} (no such heading)")
    assert not broken


def test_the_readme_stays_a_front_door_that_links_every_document_of_the_manual() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 300
    assert "./dev run" in readme and "./dev test" in readme  # CI calls ./dev test
    for document in DOCS.glob("*.md"):
        assert f"(docs/{document.name})" in readme, document.name


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}
