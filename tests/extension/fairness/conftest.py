"""A fake clock for the pacing gate."""

from __future__ import annotations

import pytest

from agentspace.fairness import pacing


class Clock:
    """``pacing._clock``: reads ``now``; ``step`` is added on every reading."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(pacing, "_clock", fake)
    return fake
