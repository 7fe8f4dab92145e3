"""The process owner's settings: glibc's allocator is tuned, unless the operator tuned it already."""

from __future__ import annotations

import platform

import pytest

from exporter.process import MALLOC_VARIABLES, tune_malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_mmap_threshold_and_the_arena_count():
    assert tune_malloc() is True


@pytest.mark.parametrize("variable", MALLOC_VARIABLES)
def test_an_operators_own_malloc_settings_are_left_alone(monkeypatch, variable):
    monkeypatch.setenv(variable, "2")
    assert tune_malloc() is False
