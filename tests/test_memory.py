"""The C allocator's mmap threshold is pinned where the C library has `mallopt` (glibc)."""

from __future__ import annotations

import platform

import pytest

from exporter.memory import pin_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_mmap_threshold_is_pinned_on_glibc() -> None:
    assert pin_mmap_threshold() is True
