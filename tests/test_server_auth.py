"""Basic auth on a real exporter: odd logins answer 401 (never 500), and a crowd of clients
sending wrong passwords cannot starve a legitimate scrape."""

from __future__ import annotations

import asyncio
import base64
import itertools
import socket
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest

from exporter.basicauth import FAILURE_BURST, BasicAuth, Verdict, parse_basic
from tests.conftest import http_get

PASSWORD = "s3cret-Pa55"
ATTACKERS = 300
SCRAPE_TIMEOUT = aiohttp.ClientTimeout(total=10)
"""Only a bound on the wait (today's failure was a 10 s timeout), not a performance claim."""


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def web_config(tmp_path: Path, users: dict[str, str], cost: int = 10) -> str:
    path = tmp_path / "web.yml"
    lines = "".join(
        f"  {user}: '{bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()}'\n"
        for user, password in users.items()
    )
    path.write_text("basic_auth_users:\n" + lines)
    return str(path)


def raw_status(port: int, header: bytes) -> int:
    """The status of `GET /metrics` sent byte for byte, with `header` as the Authorization value."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: " + header + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def guarded_exporter(run_exporter: Any, tmp_path: Path) -> Any:
    exporter = run_exporter("--demo", f"--web.config.file={web_config(tmp_path, {'prometheus': PASSWORD})}")
    exporter.wait_until(
        lambda: http_get(f"{exporter.base_url}/-/healthy", {"Authorization": basic("prometheus", PASSWORD)})[0] == 200
    )
    return exporter


@pytest.mark.parametrize(
    "header",
    [
        basic("prometheus", "x" * 73).encode(),
        basic("prometheus", PASSWORD + "é" * 40).encode(),
        "Basic cHJvbWV0aGV1czrvv70=é".encode(),
        "Basic 密码".encode(),
        b"Basic \xff\xfe",
        b"Basic " + base64.b64encode(b"prometheus:\xff\xfe"),
    ],
    ids=["73-byte password", "long UTF-8 password", "non-ASCII after base64", "UTF-8 header", "raw bytes", "not UTF-8"],
)
def test_a_login_that_cannot_be_valid_answers_401(guarded_exporter: Any, header: bytes) -> None:
    assert raw_status(guarded_exporter.port, header) == 401
    assert "Traceback" not in guarded_exporter.log()
    assert "level=error" not in guarded_exporter.log()


async def hammer(url: str, session: aiohttp.ClientSession, passwords: Any, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with session.get(url, headers={"Authorization": basic("prometheus", next(passwords))}) as response:
                await response.read()
        except aiohttp.ClientError:
            await asyncio.sleep(0.01)


async def test_a_scrape_succeeds_while_300_clients_send_wrong_passwords(run_exporter: Any, tmp_path: Path) -> None:
    """The cached login shares the attackers' address; the first-time login comes from another
    loopback address, as a Prometheus server would."""
    users = {"prometheus": PASSWORD, "newcomer": "n3w-Pa55"}
    exporter = run_exporter("--demo", f"--web.config.file={web_config(tmp_path, users)}")
    url = f"{exporter.base_url}/metrics"
    exporter.wait_until(lambda: http_get(url, {"Authorization": basic("prometheus", PASSWORD)})[0] == 200)

    wrong = (f"wrong-{n}" for n in itertools.count())
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=SCRAPE_TIMEOUT) as crowd:
        attackers = [asyncio.create_task(hammer(url, crowd, wrong, stop)) for _ in range(ATTACKERS)]
        try:
            await asyncio.sleep(0)
            async with aiohttp.ClientSession(timeout=SCRAPE_TIMEOUT) as prometheus:
                for _ in range(2):
                    async with prometheus.get(url, headers={"Authorization": basic("prometheus", PASSWORD)}) as answer:
                        assert answer.status == 200
            elsewhere = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
            newcomer = basic("newcomer", "n3w-Pa55")
            async with (
                aiohttp.ClientSession(connector=elsewhere, timeout=SCRAPE_TIMEOUT) as session,
                session.get(url, headers={"Authorization": newcomer}) as answer,
            ):
                assert answer.status == 200
        finally:
            stop.set()
            await asyncio.gather(*attackers)
    assert "Traceback" not in exporter.log()


async def test_an_address_that_spent_its_failed_attempts_is_throttled_without_bcrypt() -> None:
    auth = BasicAuth({"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()})
    try:
        verdicts = [await auth.check(basic("prometheus", f"wrong-{n}"), "192.0.2.1") for n in range(FAILURE_BURST)]
        assert verdicts == [Verdict.DENIED] * FAILURE_BURST
        assert await auth.check(basic("prometheus", "wrong-again"), "192.0.2.1") is Verdict.THROTTLED
        assert await auth.check(basic("prometheus", PASSWORD), "192.0.2.2") is Verdict.GRANTED
    finally:
        auth.close()


async def test_a_remembered_login_is_granted_while_the_bcrypt_pool_is_busy() -> None:
    auth = BasicAuth({"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()})
    try:
        assert await auth.check(basic("prometheus", PASSWORD), "192.0.2.1") is Verdict.GRANTED
        busy = [asyncio.create_task(auth.check(basic("prometheus", "wrong"), f"198.51.100.{n}")) for n in range(20)]
        await asyncio.sleep(0)
        remembered = asyncio.ensure_future(auth.check(basic("prometheus", PASSWORD), "192.0.2.1"))
        await asyncio.sleep(0)
        assert remembered.done() and remembered.result() is Verdict.GRANTED
        assert not all(task.done() for task in busy)
        await asyncio.gather(*busy)
    finally:
        auth.close()


def test_a_login_is_parsed_only_from_valid_base64_of_utf8() -> None:
    assert parse_basic(basic("prometheus", "pa:ss")) == ("prometheus", b"pa:ss")
    assert parse_basic("Basic 密码") is None
    assert parse_basic("Basic " + base64.b64encode(b"\xff:\xfe").decode()) is None
    assert parse_basic("Bearer abc") is None
    assert parse_basic("Basic " + base64.b64encode(b"no-colon").decode()) is None
