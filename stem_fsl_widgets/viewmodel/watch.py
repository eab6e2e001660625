"""How a view-model tells its views what changed: a list of ``callback(topics)``."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Watchable"]


class Watchable:
    """Views register ``callback(topics)`` and are called with the set of topics that changed."""

    def __init__(self) -> None:
        self._watchers: list[Callable[[frozenset], None]] = []

    def watch(self, callback: Callable[[frozenset], None], remove: bool = False) -> None:
        """Register ``callback(topics)``, or remove it with ``remove=True``."""
        if remove:
            self._watchers = [c for c in self._watchers if c != callback]  # bound methods compare by ==
        else:
            self._watchers.append(callback)

    def _announce(self, *topics: str) -> None:
        for cb in list(self._watchers):
            cb(frozenset(topics))
