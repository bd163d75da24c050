"""The fixtures every test directory may use: the real servers of tests.support.kafka."""

from __future__ import annotations

pytest_plugins = ["tests.support.kafka"]
