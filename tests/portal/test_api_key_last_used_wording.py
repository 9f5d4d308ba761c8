"""A key used seconds ago reads "just now", not "0 minutes ago" (issue 16)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from metering.templatetags.time_ago import time_ago
from portal.models import ApiKey
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


def last_used_cell(page: str, prefix: str) -> str:
    row = page[page.index(f'data-key="{prefix}"') :]
    cell = row[row.index('data-label="Last used"') :]
    return cell[: cell.index("</td>")]


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (timedelta(seconds=20), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=5, seconds=10), "5\xa0minutes ago"),
        (timedelta(days=2, hours=3), "2\xa0days, 3\xa0hours ago"),
    ],
)
def test_the_keys_page_says_how_long_ago_in_words(owner_client, account, ago, shown):
    key = ApiKeyFactory(account=account)
    ApiKey.objects.filter(pk=key.pk).update(last_used=timezone.now() - ago)

    cell = last_used_cell(owner_client.get("/keys/").content.decode(), key.prefix)

    assert shown in cell
    assert "0\xa0minutes" not in cell


def test_a_moment_a_little_ahead_of_this_clock_is_just_now():
    now = timezone.now()

    assert time_ago(now + timedelta(seconds=3), now) == "just now"
    assert time_ago(None) == ""
