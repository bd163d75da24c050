"""A user sends their first event through Swagger UI at /docs, in Debian's headless Chromium."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from playwright.async_api import async_playwright, expect

from tests.support.processes import service_process
from tests.support.settings import service_env
from tests.support.topics import read_topic

pytestmark = pytest.mark.browser

# Flags that let Chromium run headless as root in a container without reaching the internet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Swagger UI's ids: operations-<tag>-<operationId>; the document has no tags.
OPERATION = "#operations-default-postBiometrics"
DEADLINE_MS = 30_000


async def test_try_it_out_on_post_biometrics_sends_the_example_and_shows_202(
    chromium: Path, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"test-{uuid.uuid4().hex}"
    env = service_env(kafka_bootstrap, topic, f"test-group-{uuid.uuid4().hex}")
    screenshot = tmp_path / "swagger-ui-202.png"
    async with service_process("producer_service", env) as producer, async_playwright() as pw:
        url = await producer.url()
        browser = await pw.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{url}/docs")
            operation = page.locator(OPERATION)
            await operation.locator(".opblock-summary").click()
            await operation.get_by_role("button", name="Try it out").click()
            body = operation.locator(".body-param textarea")
            await expect(body).to_contain_text("3fa85f64-5717-4562-b3fc-2c963f66afa6")
            await operation.get_by_role("button", name="Execute").click()
            status = operation.locator(".live-responses-table .response .response-col_status")
            await expect(status).to_have_text("202", timeout=DEADLINE_MS)
            answer = operation.locator(
                ".live-responses-table .response-col_description pre", has_text='"offset"'
            )
            # The live response (curl, request URL, status 202 and body) fills the viewport.
            await operation.locator(".responses-inner").first.evaluate(
                "element => element.scrollIntoView({block: 'start'})"
            )
            await page.screenshot(path=screenshot)
            shown = orjson.loads(await answer.inner_text())
        finally:
            await browser.close()
        await producer.finish()
    print(f"screenshot: {screenshot}")
    [record] = await read_topic(kafka_bootstrap, topic, 1)
    assert (record.partition, record.offset) == (shown["partition"], shown["offset"])
    assert record.key == b"3fa85f64-5717-4562-b3fc-2c963f66afa6"
