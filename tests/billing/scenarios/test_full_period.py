"""A whole period on Pro, past the included units: the renewal invoice bills the base price and,
to the cent, every unit admitted in the period past the included ones; nothing refused, nothing
used on the free tier before the upgrade and nothing used after the period is on it."""

import pytest

from tests.billing.scenarios.stories import full_period_with_overage

pytestmark = pytest.mark.django_db


def test_a_full_period_with_overage_on_pro_is_invoiced_to_the_cent(scenario):
    full_period_with_overage(scenario)
