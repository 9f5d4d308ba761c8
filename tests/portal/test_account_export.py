"""The organisation's own data as downloads (issue 16: "an export of its usage first"): every
usage row as billed, the invoices, and both with the organisation (its members, its keys and who
made each) as JSON; only ever the session's own organisation."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from portal.models import Role
from portal.services import api_key_revoke
from tests.factories import ApiKeyFactory, MembershipFactory, UsageRollupFactory

pytestmark = pytest.mark.django_db

MINUTE = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)


def url(name: str) -> str:
    return reverse("portal:account-export", args=[name])


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


@pytest.fixture
def usage(account, outsider):
    laptop = ApiKeyFactory(account=account, name="laptop")
    UsageRollupFactory(
        account=account, api_key=laptop, endpoint="lookup", minute=MINUTE, units=7, requests=7
    )
    UsageRollupFactory(
        account=account,
        api_key=None,
        endpoint="compute",
        minute=MINUTE + timedelta(minutes=1),
        units=10,
        requests=2,
    )
    UsageRollupFactory(
        account=outsider.owned_accounts.get(), endpoint="lookup", minute=MINUTE, units=999
    )
    return laptop


NOTHING_REFUSED = {"refused_rate": "0", "refused_quota": "0", "refused_cap": "0", "errors": "0"}


def test_usage_csv_has_every_row_of_the_account(owner_client, usage):
    response = owner_client.get(url("usage.csv"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="meterdesk-')
    assert response["Cache-Control"].startswith("max-age=0")
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert rows == [
        {
            "minute": "2026-11-30T09:15:00+00:00",
            "key_prefix": usage.prefix,
            "endpoint": "lookup",
            "units": "7",
            "requests": "7",
            **NOTHING_REFUSED,
        },
        {
            "minute": "2026-11-30T09:16:00+00:00",
            "key_prefix": "",
            "endpoint": "compute",
            "units": "10",
            "requests": "2",
            **NOTHING_REFUSED,
        },
    ]


def test_a_revoked_key_usage_is_still_exported(owner_client, usage):
    api_key_revoke(key=usage)

    rows = list(csv.DictReader(io.StringIO(body(owner_client.get(url("usage.csv"))))))

    assert rows[0]["key_prefix"] == usage.prefix


def test_json_has_the_account_its_invoices_and_its_usage(owner_client, owner, usage):
    response = owner_client.get(url("account.json"))

    assert response["Content-Type"] == "application/json"
    document = json.loads(body(response))
    assert document["account"]["email"] == owner.email
    assert document["invoices"] == []
    assert [(row["endpoint"], row["units"]) for row in document["usage"]] == [
        ("lookup", 7),
        ("compute", 10),
    ]


def test_json_lists_the_members_and_who_made_each_key(owner_client, owner, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    ApiKeyFactory(account=account, name="laptop", created_by=owner)
    ApiKeyFactory(account=account, name="ci", created_by=developer.user)
    ApiKeyFactory(account=account, name="by an operator", created_by=None)

    document = json.loads(body(owner_client.get(url("account.json"))))

    assert [(m["email"], m["role"]) for m in document["members"]] == [
        (owner.email, "owner"),
        (developer.user.email, "developer"),
    ]
    joined = datetime.fromisoformat(document["members"][1]["joined"])
    assert joined == developer.created
    assert [(k["name"], k["created_by"], k["status"]) for k in document["keys"]] == [
        ("laptop", owner.email, "active"),
        ("ci", developer.user.email, "active"),
        ("by an operator", None, "active"),
    ]
    # The public prefix only: never the secret or its hash.
    assert all(set(k) >= {"prefix"} and "secret_hash" not in k for k in document["keys"])


def test_an_account_without_usage_exports_empty_documents(owner_client):
    assert body(owner_client.get(url("usage.csv"))).splitlines() == [
        "minute,key_prefix,endpoint,units,requests,refused_rate,refused_quota,refused_cap,errors"
    ]
    assert body(owner_client.get(url("invoices.csv"))).splitlines() == [
        "id,number,created,status,total,currency,period_start,period_end,url"
    ]
    assert json.loads(body(owner_client.get(url("account.json"))))["usage"] == []


def test_an_outsider_downloads_only_their_own(client, outsider, usage):
    client.force_login(outsider)

    rows = list(csv.DictReader(io.StringIO(body(client.get(url("usage.csv"))))))

    assert [row["units"] for row in rows] == ["999"]


def test_an_unknown_export_is_a_404(owner_client):
    assert owner_client.get(url("passwords.csv")).status_code == 404


def test_a_visitor_is_sent_to_log_in(client):
    response = client.get(url("usage.csv"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
