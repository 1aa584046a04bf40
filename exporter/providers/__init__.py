"""The provider registry: `provider: <name>` in a config maps to the class registered here.

Vendor modules register themselves with `@register`; discovery imports every module of this
package, so adding a vendor is adding a file, and nothing else keeps a list of vendor names.
"""

from __future__ import annotations

import importlib
import pkgutil

from exporter.providers.base import Provider

_registry: dict[str, type[Provider]] = {}
_discovered = False


def register(cls: type[Provider]) -> type[Provider]:
    if cls.name in _registry and _registry[cls.name] is not cls:
        raise RuntimeError(f"provider {cls.name!r} registered twice")
    _registry[cls.name] = cls
    return cls


def providers() -> dict[str, type[Provider]]:
    """Every known provider by name, sorted by name."""
    global _discovered
    if not _discovered:
        for module in pkgutil.iter_modules(__path__):
            if module.name != "base":
                importlib.import_module(f"{__name__}.{module.name}")
        _discovered = True
    return dict(sorted(_registry.items()))
