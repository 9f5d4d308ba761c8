"""Writes of usage: rolling the limiter's counters up into ``UsageRollup`` rows.

A bucket (one account's counters for one minute) goes through three steps:

1. ``drain`` seals it in the limiter (a late give-back can no longer change it) and reads it;
2. one transaction inserts its ``RollupBatch`` row (unique bucket name) and its ``UsageRollup``
   rows — a bucket whose batch row exists is skipped;
3. ``discard`` deletes it from the limiter.

A crash between 2 and 3 leaves the bucket sealed in the limiter with its batch row committed;
the next run drains the same counters, finds the batch row and only discards. A crash before 2
commits nothing, and the next run applies the same sealed counters. Either way each bucket is
applied exactly once, and counters leave the limiter only after their rows are committed.

Only minutes that ended more than ``ROLLUP_GRACE_SECONDS`` ago are drained: longer than any
request may run (gunicorn's timeout must stay below it), so the give-back of a slow request
lands before its minute is sealed, and rows, once written, are never modified.
"""

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from metering.limiter import get_limiter
from metering.limiter.base import Bucket, Limiter, UsageCount
from metering.models import QuotaCredit, RollupBatch, UsageRollup
from metering.selectors import period_credit_units
from portal.audit import audit_record
from portal.models import Account, ApiKey
from portal.services import AccountActionError, account_for_update
from portal.signals import account_changed_send

logger = logging.getLogger(__name__)

ROLLUP_GRACE_SECONDS = 120
ROLLUP_CHUNK = 500


@dataclass(slots=True)
class RollupResult:
    buckets: int = 0
    applied: int = 0
    # Buckets whose rows were committed by an earlier (crashed) run or a concurrent one.
    already_applied: int = 0
    rows: int = 0
    units: int = 0
    requests: int = 0


def usage_rollup(*, now: datetime | None = None, limiter: Limiter | None = None) -> RollupResult:
    """Move every closed minute's counters from the limiter into ``UsageRollup`` rows."""
    limiter = limiter or get_limiter()
    moment = (now or timezone.now()).timestamp()
    # A minute is drained once it ended at least the grace ago: minute + 60 <= now - grace.
    before = math.floor(moment - ROLLUP_GRACE_SECONDS - 60) + 1
    result = RollupResult()
    pending = limiter.pending_buckets(before=before)
    for start in range(0, len(pending), ROLLUP_CHUNK):
        buckets = pending[start : start + ROLLUP_CHUNK]
        drained = limiter.drain(buckets)
        _apply_chunk(drained, result)
        limiter.discard(buckets)
        result.buckets += len(buckets)
    if result.buckets:
        logger.info(
            "Rolled up %d buckets (%d already applied): %d rows, %d units, %d requests",
            result.buckets,
            result.already_applied,
            result.rows,
            result.units,
            result.requests,
        )
    return result


def _apply_chunk(drained: dict[Bucket, list[UsageCount]], result: RollupResult) -> None:
    try:
        with transaction.atomic():
            _apply(drained, result)
    except IntegrityError:
        # A concurrent run committed some of these buckets first: go one by one, so each
        # bucket either is applied here or is found applied.
        for bucket, counts in drained.items():
            try:
                with transaction.atomic():
                    _apply({bucket: counts}, result)
            except IntegrityError:
                logger.warning("Bucket %s was applied concurrently; skipped", bucket.name)
                result.already_applied += 1


def _apply(drained: dict[Bucket, list[UsageCount]], result: RollupResult) -> None:
    names = {bucket.name: bucket for bucket in drained}
    done = set(RollupBatch.objects.filter(bucket__in=names).values_list("bucket", flat=True))
    fresh = [bucket for name, bucket in names.items() if name not in done]
    accounts = set(
        Account.objects.filter(pk__in={b.account_id for b in fresh}).values_list("pk", flat=True)
    )
    key_ids = {count.key_id for bucket in fresh for count in drained[bucket]}
    keys = set(ApiKey.objects.filter(pk__in=key_ids).values_list("pk", flat=True))

    batches, rows = [], []
    applied = {"rows": 0, "units": 0, "requests": 0}
    for bucket in fresh:
        counts = drained[bucket]
        batches.append(
            RollupBatch(
                bucket=bucket.name,
                units=sum(count.units for count in counts),
                requests=sum(count.requests for count in counts),
            )
        )
        if bucket.account_id not in accounts:
            logger.warning(
                "Usage of deleted account %d dropped (%s)", bucket.account_id, bucket.name
            )
            continue
        # A deleted key's usage still belongs to the account, under no key (one row per endpoint).
        merged: dict[tuple[int | None, str], list[int]] = defaultdict(lambda: [0] * 6)
        for count in counts:
            cell = merged[(count.key_id if count.key_id in keys else None, count.endpoint)]
            cell[0] += count.units
            cell[1] += count.requests
            cell[2] += count.refused_rate
            cell[3] += count.refused_quota
            cell[4] += count.refused_cap
            cell[5] += count.errors
        minute = datetime.fromtimestamp(bucket.minute, UTC)
        for (key_id, endpoint), cell in merged.items():
            units, requests, *failed = cell
            if units < 0 or requests < 0:
                logger.error(
                    "Negative usage in %s (%s): %d units, %d requests; stored as 0",
                    bucket.name,
                    endpoint,
                    units,
                    requests,
                )
                units, requests = max(0, units), max(0, requests)
            refused_rate, refused_quota, refused_cap, errors = (max(0, n) for n in failed)
            if not (units or requests or refused_rate or refused_quota or refused_cap or errors):
                continue
            rows.append(
                UsageRollup(
                    account_id=bucket.account_id,
                    api_key_id=key_id,
                    endpoint=endpoint,
                    minute=minute,
                    units=units,
                    requests=requests,
                    refused_rate=refused_rate,
                    refused_quota=refused_quota,
                    refused_cap=refused_cap,
                    errors=errors,
                )
            )
            applied["rows"] += 1
            applied["units"] += units
            applied["requests"] += requests
    RollupBatch.objects.bulk_create(batches)
    UsageRollup.objects.bulk_create(rows)
    # Counted only once the inserts went through (an IntegrityError retries bucket by bucket).
    result.applied += len(fresh)
    result.already_applied += len(done)
    result.rows += applied["rows"]
    result.units += applied["units"]
    result.requests += applied["requests"]


@transaction.atomic
def quota_credit_grant(
    *, account: Account, units: int, reason: str, actor: User | None
) -> QuotaCredit:
    """Add ``units`` to the account's quota for its current period, effective at once."""
    reason = reason.strip()
    if units <= 0:
        raise AccountActionError("A credit must be at least one unit.")
    if not reason:
        raise AccountActionError("Say why the units are granted; it is kept with the credit.")
    account = account_for_update(account)
    period_start, _ = account.current_period()
    credited = period_credit_units(account_id=account.pk, period_start=period_start)
    credit = QuotaCredit.objects.create(
        account=account,
        period_start=period_start,
        units=units,
        reason=reason,
        granted_by=actor,
    )
    account_changed_send(account.pk)
    included = account.tier.included_units
    audit_record(
        actor=actor,
        action="account.credit_grant",
        account=account,
        before={"credited_units": credited, "quota": included + credited},
        after={"credited_units": credited + units, "quota": included + credited + units},
        reason=reason,
    )
    return credit
