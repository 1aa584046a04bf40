"""Remote write 1.0: protobuf WriteRequest in snappy block format with the protocol's headers,
decoded here by an independent decoder; retries for 5xx and 429 only, and Prometheus's final 500s."""

from __future__ import annotations

from typing import Any

import aiohttp
import cramjam
from aiohttp import web

from exporter.history.remote_write import RETRY_DELAYS, RemoteWriter, batches, encode_write_request
from exporter.history.settings import HistorySettings
from tests.history.prompb import decode

LABELS = (("__name__", "livestream_unique_viewers"), ("job", "x"), ("source", "g"), ("stream", "101"))
SERIES = [(LABELS, [(1_700_000_000_000, 20.0), (1_700_000_060_000, 21.5)])]


class Receiver:
    """A remote-write endpoint answering `answers` in turn (then 204), recording each request."""

    def __init__(self, *answers: tuple[int, str]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def write(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        status, text = self.answers.pop(0) if self.answers else (204, "")
        return web.Response(status=status, text=text or None)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/write", self.write)
        return app


async def send(serve_app: Any, receiver: Receiver, **keys: Any) -> tuple[Any, list[float]]:
    base_url = await serve_app(receiver.app())
    pauses: list[float] = []

    async def no_wait(seconds: float) -> None:
        pauses.append(seconds)

    settings = HistorySettings.model_validate({"remote_write_url": f"{base_url}/api/v1/write", **keys})
    async with aiohttp.ClientSession() as session:
        delivery = await RemoteWriter(session, settings, 5.0, sleep=no_wait).send(SERIES)
    return delivery, pauses


def test_encoding_decodes_as_prometheus_write_request() -> None:
    assert decode(encode_write_request(SERIES)) == [(list(LABELS), SERIES[0][1])]


async def test_request_carries_the_protocol_headers_and_a_snappy_block_body(serve_app) -> None:
    receiver = Receiver()

    delivery, _ = await send(serve_app, receiver)

    assert delivery.outcome == "sent"
    headers, body = receiver.requests[0]
    assert headers["Content-Encoding"] == "snappy"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    assert decode(bytes(cramjam.snappy.decompress_raw(body))) == [(list(LABELS), SERIES[0][1])]


async def test_5xx_and_429_are_retried_with_backoff(serve_app) -> None:
    receiver = Receiver((503, "unavailable"), (429, "slow down"))

    delivery, pauses = await send(serve_app, receiver)

    assert delivery.outcome == "sent"
    assert len(receiver.requests) == 3
    assert pauses == list(RETRY_DELAYS[:2])


async def test_other_4xx_is_final_and_rejected(serve_app) -> None:
    receiver = Receiver((400, "out of bounds"))

    delivery, pauses = await send(serve_app, receiver)

    assert (delivery.outcome, len(receiver.requests), pauses) == ("rejected", 1, [])
    assert "out of bounds" in delivery.reason


async def test_prometheus_500_too_old_sample_is_final(serve_app) -> None:
    receiver = Receiver((500, "too old sample"))

    delivery, _ = await send(serve_app, receiver)

    assert (delivery.outcome, len(receiver.requests)) == ("rejected", 1)


async def test_a_receiver_failing_every_try_leaves_the_batch_failed(serve_app) -> None:
    receiver = Receiver(*[(502, "bad gateway")] * (len(RETRY_DELAYS) + 1))

    delivery, _ = await send(serve_app, receiver)

    assert delivery.outcome == "failed"
    assert len(receiver.requests) == len(RETRY_DELAYS) + 1


async def test_bearer_token_comes_from_its_file(serve_app, tmp_path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    receiver = Receiver()

    await send(serve_app, receiver, bearer_token_file=str(token))

    assert receiver.requests[0][0]["Authorization"] == "Bearer s3cret"


def test_batches_split_long_series_and_keep_every_point() -> None:
    long = [(LABELS, [(i, float(i)) for i in range(5000)])]

    grouped = batches(long, limit=2000)

    assert [sum(len(points) for _, points in batch) for batch in grouped] == [2000, 2000, 1000]
