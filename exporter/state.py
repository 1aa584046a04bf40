"""Small per-source JSON state files that let counters and credit ledgers survive restarts.

Written atomically (temporary file, then rename) so a crash mid-write leaves the old state.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StateFiles:
    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self._warned = False

    def path(self, source: str) -> Path:
        return self.directory / f"{source}.json"

    def load(self, source: str) -> dict[str, Any]:
        path = self.path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning(
                "state file unreadable, starting fresh", extra={"file": str(path), "error": str(error)}
            )
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, source: str, data: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{source}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, separators=(",", ":"), sort_keys=True)
            os.replace(tmp, self.path(source))
        except OSError as error:
            if not self._warned:
                log.warning(
                    "cannot write state file; counters will restart from the vendor's totals",
                    extra={"state_dir": str(self.directory), "error": error.strerror or str(error)},
                )
                self._warned = True
