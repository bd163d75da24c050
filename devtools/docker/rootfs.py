"""Debian root filesystems made by debootstrap and imported as base images: no registry needed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from devtools.docker.client import DockerClient
from devtools.docker.command import run_command
from devtools.docker.errors import BuildError
from devtools.docker.fingerprint import fingerprint
from devtools.docker.paths import cache_root

SUITE = "bookworm"
_APT_SOURCES = Path("/etc/apt/sources.list.d")
_APT_SOURCES_LIST = Path("/etc/apt/sources.list")
_DEBOOTSTRAP_TIMEOUT_S = 900.0
_TAR_TIMEOUT_S = 600.0
_IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["bash"]',
)


def ensure_rootfs_image(client: DockerClient, repository: str, packages: Sequence[str]) -> str:
    """Return the tag of a minbase Debian image with packages, debootstrapping it when missing."""
    tag = f"{repository}:{SUITE}-{fingerprint(SUITE, 'minbase', *sorted(packages))}"
    if client.has_image(tag):
        return tag
    cache_root().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache_root()))
    root, tarball = work / "rootfs", work / "rootfs.tar"
    try:
        _debootstrap(root, packages)
        # Package downloads and indexes are not needed at run time; they are 100 MB.
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftovers).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = ["tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball), "."]
        run_command(tar, timeout_s=_TAR_TIMEOUT_S, error=BuildError)
        client.import_tarball(tarball, tag, _IMAGE_CHANGES)
    finally:
        _remove(work)
    return tag


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine for SUITE, from its sources."""
    texts = [path.read_text() for path in sorted(_APT_SOURCES.glob("*.sources"))]
    for text in texts:  # deb822 stanzas: "URIs: ...", "Suites: bookworm bookworm-updates"
        for stanza in text.split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, flags=re.MULTILINE))
            uris: str = fields.get("URIs", "")
            if SUITE in fields.get("Suites", "").split() and uris:
                return uris.split()[0]
    one_line = [_APT_SOURCES_LIST, *sorted(_APT_SOURCES.glob("*.list"))]
    for path in (path for path in one_line if path.is_file()):
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", path.read_text(), re.M):
            if match.group(2) == SUITE:
                return str(match.group(1))
    raise BuildError(f"apt has no source for Debian {SUITE} on this machine")


def _debootstrap(root: Path, packages: Sequence[str]) -> None:
    command = ["debootstrap", "--variant=minbase"]
    if packages:
        command.append(f"--include={','.join(packages)}")
    command += [SUITE, str(root), debian_mirror()]
    run_command(command, timeout_s=_DEBOOTSTRAP_TIMEOUT_S, error=BuildError)


def _remove(work: Path) -> None:
    """Delete a work directory, never following a mount debootstrap may have left inside it."""
    resolved = str(work.resolve())
    mounts = [
        line.split()[1]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1].startswith(resolved + "/")
    ]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)
    remaining = Path("/proc/mounts").read_text()
    if f" {resolved}/" in remaining:
        raise BuildError(f"{work} still has mounts inside; not deleting it")
    shutil.rmtree(work, ignore_errors=True)
