"""A local Docker engine and the images that stand in for registry images, for CI and tests.

`python -m devtools.docker start|images|env|stop` (or `./dev docker ...`); see __main__.
"""

from __future__ import annotations

from devtools.docker.engine import DockerEngine
from devtools.docker.errors import DockerError
from devtools.docker.images import (
    PROMETHEUS_IMAGE,
    PYTHON_IMAGE,
    ensure_kafka_image,
    ensure_prometheus_image,
    ensure_python_image,
    kafka_image,
)

__all__ = [
    "PROMETHEUS_IMAGE",
    "PYTHON_IMAGE",
    "DockerEngine",
    "DockerError",
    "ensure_kafka_image",
    "ensure_prometheus_image",
    "ensure_python_image",
    "kafka_image",
]
