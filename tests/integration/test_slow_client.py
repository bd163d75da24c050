"""A client that sends its body slowly gets 408, and holds up nobody else meanwhile."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx2 as httpx

from tests.support.fakes import RecordingPublisher
from tests.support.samples import event_body
from tests.support.servers import serving_producer
from tests.support.settings import project_settings


async def test_a_slow_body_gets_408_while_other_requests_are_served() -> None:
    settings = project_settings(http={"body_timeout_s": 1.0})
    publisher = RecordingPublisher(settings)
    async with serving_producer(settings, lambda _: publisher) as (url, _):
        address = urlsplit(url)
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        writer.write(
            b"POST /biometrics HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"deviceId": '
        )
        await writer.drain()  # ...and then nothing more
        async with httpx.AsyncClient(base_url=url) as client:
            body = event_body()
            response = await client.post("/biometrics", json=body)
        assert response.status_code == 202
        async with asyncio.timeout(10):
            status_line = await reader.readline()
        writer.close()
        await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 408"), status_line
    assert [str(e.deviceId) for e in publisher.published] == [body["deviceId"]]
