"""What the Beacon v2 interface may answer, and to whom: its settings (beacon.py explains them).

The defaults are the safe ones: no anonymous queries, small cells floored to 5, a daily budget of
queries per principal, range queries limited in length and records per page limited.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BeaconSettings:
    #: answer `g_variants` without a token (boolean granularity only); refused (401) by default
    anonymous: bool = False
    #: `g_variants` queries one principal may make per `window` seconds (429 when spent)
    budget: int = 1000
    #: `g_variants` queries one source address may make per `window` when `anonymous` is on
    anonymous_budget: int = 100
    #: the budget's window in seconds (a day); windows are aligned to the epoch (UTC midnight)
    window: int = 86_400
    #: counts of people or alleles from 1 to `floor - 1` are shown as `floor`
    floor: int = 5
    #: the frequency database (variants.store.FrequencyStore); None: `<home>/variants`
    variants: Path | None = None
    #: answer from the live database instead of its newest release (`variants release`): only
    #: for a Beacon nobody outside can query, since two answers around one `add` or `remove`
    #: differ by one person's genotype
    live: bool = False
    #: longest range query, in bases (`end - start`)
    max_range: int = 1_000_000
    #: records one response may carry (the `limit` of a request is capped at this)
    max_records: int = 100
    beacon_id: str = "dk.wgsvault.beacon"
    name: str = "wgsvault national variant frequencies"
    organization: str = "wgsvault"
    organization_url: str = "https://example.invalid/wgsvault"
    environment: str = "prod"  # prod | test | dev | staging (Beacon info `environment`)
