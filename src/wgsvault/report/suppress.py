"""Small-cell suppression: the one rule for every count that leaves the vault.

A count of 1 to 4 people can identify them, so national health statistics show it as "<5". The
vault's operator (the CLI) and a data-controller administrator see exact counts; everyone else
(a reporting principal on the dashboard, the monthly PDF) sees suppressed ones. Zero is shown:
it reveals no one. Figures derived from a suppressed count (rates, medians, forecasts) are not
shown either (`None`).
"""

from __future__ import annotations

SMALL = 5
SUPPRESSED = "<5"

Count = int | str


def suppress(n: int, exact: bool) -> Count:
    """`n`, or "<5" when it is 1 to 4 and the reader may not see exact counts."""
    if exact or n == 0 or n >= SMALL:
        return n
    return SUPPRESSED


def hidden(n: int, exact: bool) -> bool:
    """Whether `n` is suppressed (and what is derived from it must be hidden too)."""
    return not exact and 0 < n < SMALL
