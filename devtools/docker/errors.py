"""Errors of the local Docker tooling, all DockerError.

DockerError(RuntimeError) -- a docker or dockerd command failed; the message says why.
    EngineError            -- dockerd could not be installed, started or stopped.
    BuildError             -- an image or Compose v2 could not be built.
"""

from __future__ import annotations


class DockerError(RuntimeError):
    """A docker or dockerd command failed; the message carries its output."""


class EngineError(DockerError):
    """dockerd could not be installed, started or stopped."""


class BuildError(DockerError):
    """An image or Compose v2 could not be built (debootstrap, pip, mvn or go failed)."""
