"""What is counted per account, key, endpoint and minute, beside billed units and requests.

The limiter counts each minute's billable units and requests, and the calls that were refused
(429, by reason: over the rate limit, over the quota, at the spend cap) or failed (a
non-billable outcome whose units were given back). The rollup keeps them as ``UsageRollup``
columns, the live counters as ``UsageCount`` fields; the readers add them up as they add units,
each minute counted once.
"""

from dataclasses import dataclass, fields
from typing import Any

from metering.limiter.base import UsageCount

# The outcomes counted beside units and requests: ``UsageRollup`` columns and ``UsageCount``
# fields of the same names. None of them is billed.
OUTCOMES = ("refused_rate", "refused_quota", "refused_cap", "errors")


@dataclass(slots=True)
class Tally:
    """Units, requests and outcomes added up."""

    units: int = 0
    requests: int = 0
    refused_rate: int = 0
    refused_quota: int = 0
    refused_cap: int = 0
    errors: int = 0

    @property
    def refused(self) -> int:
        return self.refused_rate + self.refused_quota + self.refused_cap

    def add(self, other: "Tally") -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Tally":
        """From a row of sums named ``units``, ``requests`` and each outcome (None: 0)."""
        return cls(**{field.name: row[field.name] or 0 for field in fields(cls)})

    @classmethod
    def from_count(cls, count: UsageCount) -> "Tally":
        """From one of the limiter's live counters."""
        return cls(**{field.name: getattr(count, field.name) for field in fields(cls)})
