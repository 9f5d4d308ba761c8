"""The dashboard's usage card: the last 24 hours' billed, refused and failed calls of the
developer's own account, hour by hour, linking to those hours on the usage page."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import UsageRollupFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls(account, outsider):
    hour_ago = timezone.now() - timedelta(hours=1)
    UsageRollupFactory(account=account, minute=hour_ago, units=12, requests=6, refused_rate=4)
    UsageRollupFactory(
        account=account, minute=hour_ago, endpoint="compute", errors=2, units=0, requests=0
    )
    # Older than a day: not on the card.
    UsageRollupFactory(account=account, minute=timezone.now() - timedelta(days=2), units=500)
    UsageRollupFactory(
        account=outsider.owned_accounts.get(), minute=hour_ago, units=999, refused_quota=77
    )


def test_the_card_counts_the_last_day_by_outcome(owner_client, calls):
    html = owner_client.get("/dashboard/").content.decode()

    assert "6 billed (12 units) · 4 refused (429) · 2 failed, not billed" in html
    assert 'data-testid="chart-glance"' in html
    assert "/usage/?granularity=hour&amp;from=" in html


def test_another_accounts_calls_never_show(outsider_client, account, calls):
    html = outsider_client.get("/dashboard/").content.decode()

    assert "1 billed (999 units) · 77 refused (429)" in html
    assert "4 refused" not in html
