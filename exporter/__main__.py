"""`python -m exporter` is the same program as the `livestream-exporter` console script."""

from __future__ import annotations

import sys

from exporter.cli import main

sys.exit(main())
