"""The demo's narrator never prints a secret it knows, and notices one it learned too late."""

from __future__ import annotations

import pytest

from scripts import demo

PASSWORD = "A1a-rotated-password-0123"  # a made-up stand-in for a rendered credential


def test_a_known_secret_is_redacted_and_marks_a_leak(capsys: pytest.CaptureFixture[str]) -> None:
    narrator = demo.Narrator()
    narrator.never_print(PASSWORD)
    narrator.line(f"app: logged in with {PASSWORD}")
    out = capsys.readouterr().out
    assert PASSWORD not in out
    assert "<redacted>" in out
    assert narrator.leaked


def test_a_secret_learned_after_it_was_printed_is_a_leak(
    capsys: pytest.CaptureFixture[str],
) -> None:
    narrator = demo.Narrator()
    narrator.line(f"app: logged in with {PASSWORD}")
    capsys.readouterr()
    assert not narrator.leaked
    narrator.never_print(PASSWORD)  # e.g. the credential watcher reads the file afterwards
    assert narrator.leaked


def test_lines_without_secrets_are_no_leak(capsys: pytest.CaptureFixture[str]) -> None:
    narrator = demo.Narrator()
    narrator.never_print(PASSWORD)
    narrator.line("app: logged in as v-kubernetes-orders-x1y2")
    narrator.never_print("another-secret-value")
    assert "v-kubernetes-orders-x1y2" in capsys.readouterr().out
    assert not narrator.leaked
