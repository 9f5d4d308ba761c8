"""The rollup worker is behind at a period's end: the period's final window goes to Stripe without
the last minutes' calls, which are rolled up and reported minutes later, inside Stripe's
finalization grace hour. They are on that period's invoice, and on no other."""

import pytest

from tests.billing.scenarios.stories import usage_rolled_up_late

pytestmark = pytest.mark.django_db


def test_usage_rolled_up_after_the_final_window_still_reaches_the_periods_invoice(scenario):
    usage_rolled_up_late(scenario)
