"""An organisation's data, downloaded by its owner before they delete it (or any time): every
usage row the rollup wrote for it, its invoices, and the organisation itself (its members, and
its keys with who made each; never a key's secret or hash).

An account with a long history has millions of usage rows, so they are streamed, never held
in memory. The last two or three minutes, still in the limiter's counters until the rollup job
moves them, are not in the export yet (the page says so).

The usage rows come from ``metering.selectors.account_usage_rows`` (per minute, key and
endpoint, billed units beside refused and failed calls).
"""

import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

from billing.selectors import invoice_list_for_account
from metering.selectors import account_usage_rows
from portal.models import Account, ApiKey

# Lines (or JSON rows) sent per write of a streamed export.
PIECES_PER_WRITE = 500
# Every invoice an account has; the billing page shows the newest few.
INVOICES_ALL = 100_000


class InvoiceExportRow(NamedTuple):
    id: str
    number: str
    created: str
    status: str
    # In the currency's smallest unit (cents), as Stripe states it.
    total: int | None
    currency: str
    period_start: str
    period_end: str
    url: str


INVOICE_FIELDS = list(InvoiceExportRow._fields)


def _epoch_iso(value: Any) -> str:
    return datetime.fromtimestamp(value, UTC).isoformat() if isinstance(value, int) else ""


def account_invoice_rows(*, account: Account) -> list[InvoiceExportRow]:
    """The account's invoices as Stripe issued them (drafts left out), newest first."""
    return [
        InvoiceExportRow(
            id=invoice.id,
            number=invoice.number or "",
            created=invoice.created.astimezone(UTC).isoformat() if invoice.created else "",
            status=invoice.status or "",
            total=invoice.total,
            currency=invoice.currency or "",
            period_start=_epoch_iso(invoice.period_start),
            period_end=_epoch_iso(invoice.period_end),
            url=invoice.hosted_invoice_url or "",
        )
        for invoice in invoice_list_for_account(account, limit=INVOICES_ALL)
    ]


class _Line:
    """A file-like object whose ``write`` hands back the line: csv.writer formats one row at a
    time into it, and the lines go out in batches as they come (nothing is held whole)."""

    def write(self, value: str) -> str:
        return value


def _batched(pieces: Iterable[str]) -> Iterator[str]:
    """The pieces joined a few hundred at a time: one write per piece of a few dozen bytes
    would cost the server more than making them."""
    batch: list[str] = []
    for piece in pieces:
        batch.append(piece)
        if len(batch) == PIECES_PER_WRITE:
            yield "".join(batch)
            batch.clear()
    if batch:
        yield "".join(batch)


def csv_lines(fields: list[str], rows: Iterable[tuple]) -> Iterator[str]:
    """A CSV document in pieces of many lines: the header, then each row."""
    writer = csv.writer(_Line())
    return _batched(itertools.chain([writer.writerow(fields)], map(writer.writerow, rows)))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def account_member_rows(*, account: Account) -> list[dict[str, Any]]:
    """The organisation's members, in the order they joined."""
    memberships = account.memberships.select_related("user").order_by("created", "pk")
    return [{"email": m.user.email, "role": m.role, "joined": _iso(m.created)} for m in memberships]


def account_key_rows(*, account: Account) -> list[dict[str, Any]]:
    """The organisation's keys, oldest first: their public prefix, state and who made each
    (``created_by`` None: an operator or a command, or a login deleted since)."""
    keys = ApiKey.objects.filter(account=account).select_related("created_by").order_by("created")
    return [
        {
            "name": key.name,
            "prefix": key.prefix,
            "status": key.status,
            "created": _iso(key.created),
            "created_by": key.created_by.email if key.created_by else None,
            "last_used": _iso(key.last_used),
            "expires_at": _iso(key.expires_at),
            "revoked_at": _iso(key.revoked_at),
        }
        for key in keys
    ]


def account_json_chunks(*, account: Account, now: datetime) -> Iterator[str]:
    """The organisation (members and keys), its invoices and its usage as one JSON document,
    streamed."""
    return _batched(_account_json_pieces(account=account, now=now))


def _account_json_pieces(*, account: Account, now: datetime) -> Iterator[str]:
    """One JSON document with the account, its invoices and its usage, in pieces: the usage
    array is written row by row, so a long history streams in constant memory."""
    head = {
        "exported_at": now.astimezone(UTC).isoformat(),
        "account": {
            "email": account.owner.email,
            "name": account.name,
            "tier": account.tier.slug,
            "created": account.created.astimezone(UTC).isoformat(),
        },
        "members": account_member_rows(account=account),
        "keys": account_key_rows(account=account),
        "invoices": [row._asdict() for row in account_invoice_rows(account=account)],
    }
    yield json.dumps(head)[:-1] + ', "usage": ['
    for index, row in enumerate(account_usage_rows(account_id=account.pk)):
        yield ("," if index else "") + json.dumps(row._asdict())
    yield "]}"
