"""Without root the demo stops at once and says why, instead of failing halfway."""

from __future__ import annotations

import os

import pytest

from scripts import demo


def test_the_demo_refuses_to_start_without_root_and_explains(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert demo.main() == demo.EXIT_CANNOT_RUN
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "make demo needs root" in captured.err
    assert "user namespace maps only one uid" in captured.err
