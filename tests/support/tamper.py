"""Tampering helpers for the verification tests."""

from __future__ import annotations

from typing import Any


class TwoStreamsOnly:
    """A store whose joined rows never line up (the leaf's id is hidden), so
    that every page goes through the two-stream loop."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def read_leaves_with_events(self, start: int, limit: int) -> Any:
        return [(*row[:2], None, *row[3:]) for row in self.store.read_leaves_with_events(start, limit)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)
