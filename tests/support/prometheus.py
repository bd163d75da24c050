"""Debian's Prometheus run for a test: a generated configuration scraping the given targets with
the given rule files, and its HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

from devtools.processes import free_port
from tests.support.polling import eventually

# Scrape and evaluate every second, so that a test waits seconds, not minutes.
_INTERVAL = "1s"
_STOP_TIMEOUT_S = 30


@dataclass
class PrometheusApi:
    """Prometheus' HTTP API (/api/v1), as a test reads it."""

    client: httpx.AsyncClient
    log: Path

    async def _get(self, path: str, **params: str) -> Any:
        response = await self.client.get(f"/api/v1/{path}", params=params)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of `promql` now; an AssertionError naming Prometheus' error."""
        data = await self._get("query", query=promql)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def rules(self) -> list[dict[str, Any]]:
        """Every rule Prometheus evaluates, with its health, last error and group."""
        groups = (await self._get("rules"))["groups"]
        return [rule | {"group": group["name"]} for group in groups for rule in group["rules"]]

    async def alerts(self) -> dict[str, str]:
        """The active alerts, pending or firing: 'name{labels}' -> state."""
        active = (await self._get("alerts"))["alerts"]
        return {_alert_name(alert["labels"]): alert["state"] for alert in active}

    async def evaluations(self) -> dict[str, str]:
        """The time of each rule group's last evaluation, by Prometheus' own clock."""
        groups = (await self._get("rules"))["groups"]
        return {group["name"]: group["lastEvaluation"] for group in groups}

    async def targets(self) -> dict[str, str]:
        """The health of each active target, by job."""
        active = (await self._get("targets"))["activeTargets"]
        return {target["labels"]["job"]: target["health"] for target in active}


def _alert_name(labels: Mapping[str, str]) -> str:
    rest = ",".join(f"{key}={value}" for key, value in sorted(labels.items()) if key != "alertname")
    return f"{labels['alertname']}{{{rest}}}"


def prometheus_config(targets: Mapping[str, str], rule_files: Sequence[Path]) -> dict[str, Any]:
    """A configuration scraping each job's one target (host:port) every second, with the rules."""
    return {
        "global": {
            "scrape_interval": _INTERVAL,
            "scrape_timeout": _INTERVAL,
            "evaluation_interval": _INTERVAL,
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }


@contextlib.asynccontextmanager
async def running_prometheus(
    binary: Path, directory: Path, targets: Mapping[str, str], rule_files: Sequence[Path]
) -> AsyncIterator[PrometheusApi]:
    """Prometheus on a free port of 127.0.0.1, its data and log in `directory`, until the block
    ends; then SIGTERM (SIGKILL after _STOP_TIMEOUT_S)."""
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(targets, rule_files), sort_keys=False))
    address = f"127.0.0.1:{free_port()}"
    log = directory / "prometheus.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={address}",
            stdout=output,
            stderr=output,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
            api = PrometheusApi(client, log)

            async def ready() -> int:
                if process.returncode is not None:
                    raise AssertionError(f"prometheus exited: {log.read_text()[-2000:]}")
                return (await client.get("/-/ready")).status_code

            await eventually(
                ready,
                lambda status: status == 200,
                timeout_s=60,
                awaiting="Prometheus' /-/ready",
                ignoring=(httpx.TransportError,),
            )
            yield api
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(_STOP_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
