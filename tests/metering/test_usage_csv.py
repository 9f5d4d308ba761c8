"""/usage/export.csv: the usage page's series as a CSV download — the same period or dates, the
same granularity and filters — streamed row by row, scoped to the signed-in developer."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext

from tests.factories import ApiKeyFactory, UsageRollupFactory

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 11, 3, tzinfo=UTC)


def rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def keys(account):
    laptop = ApiKeyFactory(account=account, name="laptop")
    server = ApiKeyFactory(account=account, name="server")
    UsageRollupFactory(account=account, api_key=laptop, minute=DAY + timedelta(hours=1), units=3)
    UsageRollupFactory(
        account=account,
        api_key=server,
        endpoint="compute",
        minute=DAY + timedelta(hours=1, minutes=30),
        units=10,
        requests=2,
        refused_rate=5,
        refused_cap=1,
        errors=2,
    )
    return laptop, server


def test_an_hourly_range_as_csv(owner_client, keys):
    response = owner_client.get(
        "/usage/export.csv", {"from": "2026-11-03", "to": "2026-11-03", "granularity": "hour"}
    )

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="meterdesk-usage-20261103T0000-20261104T0000-hour.csv"'
    )
    table = rows(response)
    assert len(table) == 24
    assert table[1] == {
        "start": "2026-11-03T01:00:00Z",
        "end": "2026-11-03T02:00:00Z",
        "units": "13",
        "requests": "3",
        "refused_rate_limit": "5",
        "refused_quota": "0",
        "refused_spend_cap": "1",
        "failed": "2",
        "key": "all",
        "endpoint": "all",
    }
    assert sum(int(row["units"]) for row in table) == 13


def test_the_filters_apply_and_name_the_file(owner_client, keys):
    _laptop, server = keys

    response = owner_client.get(
        "/usage/export.csv",
        {
            "from": "2026-11-03",
            "to": "2026-11-04",
            "granularity": "day",
            "key": server.pk,
            "endpoint": "compute",
        },
    )

    table = rows(response)
    assert [(row["start"][:10], row["units"]) for row in table] == [
        ("2026-11-03", "10"),
        ("2026-11-04", "0"),
    ]
    assert {(row["key"], row["endpoint"]) for row in table} == {(server.prefix, "compute")}
    assert f"-day-{server.prefix}-compute.csv" in response["Content-Disposition"]


def test_a_long_range_streams_from_one_cursor(owner_client, keys):
    """Years of hours: more than a page may draw, but an export streams them (the rows come
    from a server-side cursor, PostgreSQL's, in chunks), in a constant number of queries."""
    with CaptureQueriesContext(connection) as queries:
        response = owner_client.get(
            "/usage/export.csv",
            {"from": "2025-01-01", "to": "2026-12-31", "granularity": "hour"},
        )
        table = rows(response)

    assert len(table) == 730 * 24
    assert sum(int(row["units"]) for row in table) == 13
    usage_queries = [q for q in queries.captured_queries if "metering_usagerollup" in q["sql"]]
    assert len(usage_queries) == 1


def test_the_running_period_by_default(owner_client, account):
    UsageRollupFactory(account=account, minute=account.period_start + timedelta(minutes=1))

    table = rows(owner_client.get("/usage/export.csv"))

    start, end = account.current_period()
    assert table[0]["start"] == start.isoformat().replace("+00:00", "Z")
    assert table[-1]["end"] == end.isoformat().replace("+00:00", "Z")
    assert sum(int(row["units"]) for row in table) == 1


def test_another_accounts_key_is_a_404(owner_client, outsider):
    foreign = ApiKeyFactory(account=outsider.owned_accounts.get())

    assert owner_client.get("/usage/export.csv", {"key": foreign.pk}).status_code == 404


def test_another_account_gets_only_its_own_usage(outsider_client, keys):
    table = rows(outsider_client.get("/usage/export.csv", {"from": "2026-11-03"}))

    assert all(row["units"] == "0" for row in table)


@pytest.mark.parametrize(
    "params",
    [
        {"granularity": "fortnight"},
        {"from": "2026-13-45"},
        {"from": "2000-01-01", "to": "2026-01-01", "granularity": "minute"},
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(owner_client, account, params):
    response = owner_client.get("/usage/export.csv", params)

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode().split(":")[0] in params


def test_needs_a_login(client, db):
    assert client.get("/usage/export.csv").status_code == 302
