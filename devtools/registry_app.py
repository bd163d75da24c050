"""Apicurio Registry's prebuilt application from Maven Central, cached, and the java that runs it.

Apicurio publishes the whole Quarkus application, runner jar and lib/, as one archive
(io.apicurio:apicurio-registry-app:<version>:tar.gz:all); `mvn dependency:unpack` fetches it into
~/.m2 and unpacks it into ~/.cache/biometrics/apicurio-<version>/app. Errors: LocalRegistryError.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from devtools.errors import LocalKafkaError
from devtools.kafka_classpath import java_executable
from devtools.maven import run_maven

__all__ = ["LocalRegistryError", "apicurio_version", "ensure_registry_app", "registry_java"]

REGISTRY_FILES = Path(__file__).with_name("registry")
_POM = REGISTRY_FILES / "pom.xml"
# Mirrors every repository to Maven Central: Apicurio's parent pom also names Confluent's
# repository and JitPack, which must not be asked.
_SETTINGS = REGISTRY_FILES / "settings.xml"
_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class LocalRegistryError(RuntimeError):
    """Maven, Java or the registry failed to do what LocalRegistry needed."""


@functools.cache
def apicurio_version() -> str:
    """Return the Apicurio version that devtools/registry/pom.xml declares, the one source."""
    version = ET.parse(_POM).getroot().findtext("m:properties/m:apicurio.version", namespaces=_NS)
    if not version:
        raise LocalRegistryError(f"{_POM} does not declare <apicurio.version>")
    return version.strip()


def ensure_registry_app(
    cache_dir: Path | None = None, environ: Mapping[str, str] = os.environ
) -> Path:
    """Fetch and unpack the registry unless already cached; return its runner jar."""
    if cache_dir is None:
        default = Path.home() / ".cache" / "biometrics"
        cache_dir = Path(environ.get("BIOMETRICS_CACHE_DIR") or default)
    root = cache_dir / f"apicurio-{apicurio_version()}"
    app, marker = root / "app", root / "app.complete"
    runner = app / f"apicurio-registry-app-{apicurio_version()}-runner.jar"
    # The stamp covers the pom and the settings: editing either unpacks the app again.
    stamp = hashlib.sha256(_POM.read_bytes() + _SETTINGS.read_bytes()).hexdigest()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        # Parallel test sessions share the cache: one unpacks, the others wait for it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == stamp and runner.is_file():
            return runner
        marker.unlink(missing_ok=True)
        shutil.rmtree(app, ignore_errors=True)
        shutil.rmtree(root / "maven-markers", ignore_errors=True)
        _unpack(root)
        if not runner.is_file():
            raise LocalRegistryError(f"mvn unpacked the registry, but {runner} is missing")
        marker.write_text(stamp + "\n")
    return runner


def registry_java() -> str:
    """Return the java executable (17+), preferring $JAVA_HOME."""
    try:
        return java_executable()
    except LocalKafkaError as error:
        raise LocalRegistryError(str(error)) from None


def _unpack(root: Path) -> None:
    """Run `mvn dependency:unpack` for the pom, into root/app."""
    arguments = [
        *("-s", str(_SETTINGS), "-f", str(_POM)),
        *("dependency:unpack", f"-Dregistry.home={root}"),
    ]
    run_maven(arguments, "fetch the registry", LocalRegistryError)
