"""Two sides timed in alternating rounds, so that both see the same machine."""

from __future__ import annotations

from collections.abc import Callable


def alternating(rounds: int, per: int, first: Callable[[range], float],
                second: Callable[[range], float]) -> tuple[float, float]:
    """Run ``rounds`` rounds of ``per`` items on each side; the seconds each side took in all.

    Each round gives both sides the same range; which side goes first alternates, so
    neither always follows the other's leftovers (a WAL checkpoint, a busy disk).
    """
    t_first = t_second = 0.0
    for r in range(rounds):
        chunk = range(r * per, (r + 1) * per)
        if r % 2 == 0:
            t_first += first(chunk)
            t_second += second(chunk)
        else:
            t_second += second(chunk)
            t_first += first(chunk)
    return t_first, t_second
