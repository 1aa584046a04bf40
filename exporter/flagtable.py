"""The flag table of docs/configuration.md, generated from the parser that prints `--help`, so
the two cannot drift apart: tests/test_docs.py fails when they differ.

    python -m exporter.flagtable docs/configuration.md     # rewrite the table between its markers
"""

from __future__ import annotations

import argparse
import re
import sys

from exporter.cli import build_parser
from exporter.docblock import rewrite_main

BEGIN = "<!-- flag table: generated from --help by `python -m exporter.flagtable docs/configuration.md` -->"
END = "<!-- end of flag table -->"
_DEFAULT_IN_HELP = re.compile(r"\s*\(default: (?P<default>[^()]*)\)")


def _default(action: argparse.Action) -> str:
    """What the table shows as the default: the help's own words, or argparse's value."""
    said = _DEFAULT_IN_HELP.search(action.help or "")
    if said:
        return said["default"]
    if action.default is False:
        return "off"
    if isinstance(action.default, str) and action.default != argparse.SUPPRESS:
        return f"`{action.default}`"
    return ""


def _meaning(action: argparse.Action) -> str:
    text = _DEFAULT_IN_HELP.sub("", action.help or "").strip()
    return f"{text[:1].upper()}{text[1:]}."


def rows(parser: argparse.ArgumentParser) -> list[str]:
    found = []
    for action in parser._actions:
        flag = next((option for option in action.option_strings if option.startswith("--")), None)
        if flag is None or flag == "--help":
            continue
        named = f"{flag} {action.metavar}" if isinstance(action.metavar, str) else flag
        found.append(f"| `{named}` | {_default(action)} | {_meaning(action)} |")
    return found


def flag_table() -> str:
    lines = ["| flag | default | meaning |", "|---|---|---|", *rows(build_parser())]
    return "\n".join([BEGIN, *lines, END])


def main(argv: list[str]) -> int:
    return rewrite_main(argv, "python -m exporter.flagtable docs/configuration.md", BEGIN, END, flag_table)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
