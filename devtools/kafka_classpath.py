"""Kafka's runtime jars from Maven Central, cached, and the java that runs them."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from devtools.errors import LocalKafkaError
from devtools.maven import run_maven

__all__ = ["KAFKA_FILES", "ensure_kafka_classpath", "java_executable", "kafka_version"]

KAFKA_FILES = Path(__file__).with_name("kafka")
_POM = KAFKA_FILES / "pom.xml"
_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


@functools.cache
def kafka_version() -> str:
    """Return the Kafka version declared in devtools/kafka/pom.xml, the one source of truth."""
    version = ET.parse(_POM).getroot().findtext("m:properties/m:kafka.version", namespaces=_NS)
    if not version:
        raise LocalKafkaError(f"{_POM} does not declare <kafka.version>")
    return version.strip()


def ensure_kafka_classpath(cache_dir: Path | None = None) -> Path:
    """Download Kafka's runtime jars with Maven unless already cached; return their directory."""
    if cache_dir is None:
        default = Path.home() / ".cache" / "biometrics"
        cache_dir = Path(os.environ.get("BIOMETRICS_CACHE_DIR") or default)
    root = cache_dir / f"kafka-{kafka_version()}"
    libs, marker = root / "libs", root / "libs.complete"
    # The stamp covers the whole pom, so editing e.g. the log4j2 version refreshes the jars.
    stamp = hashlib.sha256(_POM.read_bytes()).hexdigest()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        # Parallel test sessions share the cache: one downloads, the others wait for it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == stamp:
            return libs
        marker.unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        _copy_dependencies(libs)
        marker.write_text(stamp + "\n")
    return libs


def java_executable() -> str:
    """Return the java executable, preferring $JAVA_HOME."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise LocalKafkaError("no `java` found (set JAVA_HOME or put java 17+ on PATH)")
    return java


def _copy_dependencies(libs: Path) -> None:
    """Run `mvn dependency:copy-dependencies` for the pom into libs."""
    arguments = [
        *("-f", str(_POM), "dependency:copy-dependencies"),
        *(f"-DoutputDirectory={libs}", "-DincludeScope=runtime"),
    ]
    run_maven(arguments, "assemble Kafka", LocalKafkaError)
