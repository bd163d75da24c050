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
