# The journey drives Stripe the way the billing tests do: the emulator, through the real SDK.
from tests.billing.conftest import stripe_api  # noqa: F401
