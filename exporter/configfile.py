"""Reading config and secret files without trusting them: bounded size, UTF-8 text only, and
YAML whose nesting and alias expansion are bounded.

Whatever is in the file, the outcome is a value or one line saying why not, found quickly: a
file that never ends (`/dev/zero`), nesting 10,000 levels deep (Python's recursion limit) or a
"billion laughs" of aliases (a few hundred bytes that expand to gigabytes once walked) would
otherwise hang, exhaust memory or end in a traceback.
"""

from __future__ import annotations

import codecs
import os
from typing import Any

import yaml

MAX_CONFIG_BYTES = 1 << 20
"""1 MiB: ten thousand sources fit; PyYAML reads about 100 KiB a second on a busy core."""
MAX_SECRET_BYTES = 64 << 10
MAX_YAML_DEPTH = 32
"""The deepest a config nests is sources → entry → list → entry → value: 32 is ample."""
MAX_YAML_NODES = 1_000_000
"""Scalars, lists and mappings in the document once every alias is expanded."""

_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class FileProblem(Exception):
    """Why a file could not be used, without its name: the caller's line names file and key.
    `os_error` is set when the operating system refused to read it."""

    def __init__(self, reason: str, os_error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.os_error = os_error


def _os_problem(error: OSError) -> FileProblem:
    text = error.strerror or str(error)
    return FileProblem(f"cannot read: {text}", text)


def read_bounded(path: str, limit: int) -> bytes:
    """The file's bytes, refusing one larger than `limit`. Opened non-blocking, so a FIFO
    without a writer is an error instead of a wait."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise _os_problem(error) from None
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise _os_problem(error) from None
    finally:
        os.close(fd)
    if size > limit:
        raise FileProblem(f"larger than {_size(limit)}")
    return b"".join(chunks)


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"


def decode_text(data: bytes) -> str:
    """UTF-8 (a UTF-8 byte order mark is dropped); anything else is refused by name."""
    for mark, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            raise FileProblem(f"encoded as {encoding}; save it as UTF-8")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise FileProblem(f"not UTF-8 text (invalid byte at offset {error.start})") from None


class _BoundedLoader(yaml.SafeLoader):
    """YAML's safe loader, bounded in depth and in size after alias expansion, and refusing a
    key given twice in one mapping: PyYAML would silently keep the last, and a config whose
    second `api_key` wins is a typo waiting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        start = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", start)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if id(node) not in self._expanded:
            self._expanded[id(node)] = size = 1 + sum(self._expanded.get(id(child), 1) for child in _children(node))
            if size > MAX_YAML_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"expands to more than {MAX_YAML_NODES:,} values (aliases?)", start
                )
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _unique_mapping(loader: _BoundedLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


_BoundedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_yaml(text: str) -> Any:
    """The document's data; FileProblem (`line N: invalid YAML: ...`) when it is not YAML or
    is beyond the bounds above."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise FileProblem(f"{where}invalid YAML: {problem}") from None
