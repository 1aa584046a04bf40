"""Built-in simulators of every vendor, for `--demo` and for the tests.

Each module here is written from the vendor's documentation with its own code: it never imports
the provider's parsing, formatting or signing, so a mistake in the client cannot hide behind the
same mistake in the simulator. A module exposes `simulator() -> Simulator`; discovery finds it,
so adding a vendor's simulator is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web


class Simulator(Protocol):
    provider: str

    def app(self) -> web.Application:
        """The vendor's API as an aiohttp application."""

    def demo_sources(self, base_url: str) -> list[dict[str, Any]]:
        """Config entries (as a user would write them) that poll this simulator."""


@dataclass
class RunningSimulators:
    runners: list[web.AppRunner] = field(default_factory=list)
    base_urls: dict[str, str] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def simulators() -> list[Simulator]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "simulator"):
            found.append(module.simulator())
    return sorted(found, key=lambda sim: sim.provider)


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Run an app on loopback and return its runner and base URL (port 0: any free port)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    return runner, f"http://{host}:{bound[1]}"


async def start_simulators() -> RunningSimulators:
    running = RunningSimulators()
    for sim in simulators():
        runner, base_url = await serve(sim.app())
        running.runners.append(runner)
        running.base_urls[sim.provider] = base_url
        running.sources.extend(sim.demo_sources(base_url))
    return running
