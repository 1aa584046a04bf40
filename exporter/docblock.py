"""A generated block of a docs page: the text between two HTML comments that a module rewrites
(`exporter.flagtable`, `exporter.metrictable`), so a page and the code it documents cannot drift
apart; the docs tests fail when a page holds anything else there."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def replace_block(text: str, begin: str, end: str, block: str) -> str:
    """`text` with the part from `begin` to `end` (both kept) replaced by `block`, which holds both."""
    start, stop = text.index(begin), text.index(end) + len(end)
    return text[:start] + block + text[stop:]


def rewrite_main(argv: list[str], usage: str, begin: str, end: str, block: Callable[[], str]) -> int:
    """The command line of a generator: rewrite the block in the one page named."""
    if len(argv) != 1:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    path = Path(argv[0])
    text = path.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        print(f"{path}: no generated block to replace, it must hold {begin} and {end}", file=sys.stderr)
        return 1
    path.write_text(replace_block(text, begin, end, block()), encoding="utf-8")
    return 0
