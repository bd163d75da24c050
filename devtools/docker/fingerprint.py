"""A short content hash of an image's inputs, used as its tag: same inputs, same tag, no rebuild."""

from __future__ import annotations

import hashlib
from pathlib import Path

_LENGTH = 12


def fingerprint(*parts: str | Path) -> str:
    """Hash strings and files (a directory: every file below it, with its path and mode)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            for file in sorted(part.rglob("*")) if part.is_dir() else [part]:
                if file.is_file():
                    name = file.relative_to(part) if part.is_dir() else file.name
                    digest.update(f"{name}:{file.stat().st_mode & 0o111}:".encode())
                    digest.update(hashlib.sha256(file.read_bytes()).digest())
        else:
            digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:_LENGTH]
