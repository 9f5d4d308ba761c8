"""The usage banner shows the usage of this moment, not the last alert sent (issue 16).

At 100 % of the quota, with calls already refused, the banner still said "80 %" until the alert
job (every five minutes) caught up. It now reads the rolled-up minutes and the limiter's live
counters when the page is drawn.
"""

import pytest

from portal.models import Account
from tests.factories import ApiKeyFactory, QuotaCreditFactory, TierFactory, UsageAlertFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(owner):
    Account.objects.filter(owner=owner).update(
        tier=TierFactory(included_units=5, rate_limit_per_minute=600)
    )
    return ApiKeyFactory(account=Account.objects.get(owner=owner))


def banner_of(page: str) -> str:
    start = page.index('data-testid="usage-alert-banner"')
    return page[start : page.index("</div>", start)]


def test_calls_refused_at_the_quota_show_at_once_though_only_the_80_alert_went_out(
    owner_client, key, call
):
    UsageAlertFactory(account=key.account, threshold=80, status="sent")
    statuses = [call(key, "/v1/test/lookup").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]

    for url in ("/dashboard/", "/usage/"):
        banner = banner_of(owner_client.get(url).content.decode())
        assert "You have used all your included units." in banner, url
        assert "API calls are refused" in banner
        assert "80%" not in banner


def test_usage_not_rolled_up_yet_crosses_a_threshold_before_any_alert_job(owner_client, key, call):
    for _ in range(4):
        assert call(key, "/v1/test/lookup").status_code == 200

    banner = banner_of(owner_client.get("/dashboard/").content.decode())

    assert "You have used 80% of your included units" in banner
    assert "(4 of 5 this period" in banner


def test_a_credit_granted_since_the_alert_lowers_the_banner(owner_client, key, call):
    for _ in range(5):
        assert call(key, "/v1/test/lookup").status_code == 200
    UsageAlertFactory(account=key.account, threshold=100, status="sent")
    QuotaCreditFactory(account=key.account, units=95)

    page = owner_client.get("/dashboard/").content.decode()

    # 5 of 100 units: no threshold crossed, whatever the alert of an hour ago said.
    assert "usage-alert-banner" not in page
