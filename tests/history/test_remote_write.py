"""Remote write 1.0: protobuf WriteRequest in snappy block format with the protocol's headers,
decoded here by an independent decoder; retries for 5xx and 429 only, and Prometheus's final 500s."""

from __future__ import annotations

from typing import Any

import aiohttp
import cramjam
import pytest
from aiohttp import web

from exporter.history.points import TimedSample
from exporter.history.remote_write import RETRY_DELAYS, RemoteWriter, batches, encode_write_request, remote_series
from exporter.history.series import SeriesSet
from exporter.history.settings import HistorySettings
from exporter.metrics import SourceIdentity
from exporter.poll import Sample
from tests.history.prompb import decode

LABELS = (("__name__", "livestream_unique_viewers"), ("job", "x"), ("source", "g"), ("stream", "101"))
SERIES = [(LABELS, [(1_700_000_000_000, 20.0), (1_700_000_060_000, 21.5)])]


def test_wire_bytes_use_prompb_field_numbers_and_wire_types() -> None:
    """types.proto: Label{name=1, value=2 strings}, Sample{value=1 double, timestamp=2 int64},
    TimeSeries{labels=1, samples=2}; remote.proto: WriteRequest{timeseries=1}."""
    encoded = encode_write_request([((("a", "b"),), [(-1, 0.5)])])

    label = b"\x0a\x06" + b"\x0a\x01a" + b"\x12\x01b"
    double_half = bytes.fromhex("000000000000e03f")
    minus_one = b"\xff" * 9 + b"\x01"
    sample = b"\x12\x14" + b"\x09" + double_half + b"\x10" + minus_one
    assert encoded == b"\x0a" + bytes((len(label) + len(sample),)) + label + sample


def test_series_go_out_with_labels_sorted_by_name_and_points_in_time_order() -> None:
    series = SeriesSet()
    identity = SourceIdentity("src", "gcore", (("team", "a"),))
    points = [
        TimedSample(ts, Sample.of("livestream_unique_viewers", ts / 60, stream="9")) for ts in (180.0, 60.0, 120.0)
    ]
    series.add(identity, points, {"job": "j", "instance": "i:1"})

    ((labels, samples),) = remote_series(series)

    assert [name for name, _ in labels] == sorted(name for name, _ in labels)
    assert ("__name__", "livestream_unique_viewers") in labels
    assert samples == [(60_000, 1.0), (120_000, 2.0), (180_000, 3.0)]


class Receiver:
    """A remote-write endpoint answering `answers` in turn (then 204), recording each request."""

    def __init__(self, *answers: tuple[int, str] | tuple[int, str, str]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def write(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        status, text, *retry_after = self.answers.pop(0) if self.answers else (204, "")
        headers = {"Retry-After": retry_after[0]} if retry_after else None
        return web.Response(status=status, text=text or None, headers=headers)

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


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413])
async def test_other_4xx_is_final_and_rejected(serve_app, status: int) -> None:
    receiver = Receiver((status, "out of bounds"))

    delivery, pauses = await send(serve_app, receiver)

    assert (delivery.outcome, len(receiver.requests), pauses) == ("rejected", 1, [])
    assert "out of bounds" in delivery.reason


async def test_a_plain_500_is_retried(serve_app) -> None:
    receiver = Receiver((500, "internal error"))

    delivery, pauses = await send(serve_app, receiver)

    assert (delivery.outcome, len(receiver.requests), pauses) == ("sent", 2, [RETRY_DELAYS[0]])


async def test_a_429_waits_at_least_its_retry_after(serve_app) -> None:
    receiver = Receiver((429, "slow down", "7"))

    delivery, pauses = await send(serve_app, receiver)

    assert (delivery.outcome, pauses) == ("sent", [7.0])


@pytest.mark.parametrize("words", ["too old sample", "out of bounds"])
async def test_prometheus_500_for_a_sample_it_never_takes_is_final(serve_app, words: str) -> None:
    receiver = Receiver((500, f"{words}: some detail"))

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
