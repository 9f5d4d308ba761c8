import stripe
from django.apps import AppConfig
from django.conf import settings


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # The bundled emulator (or any Stripe-compatible server) stands in for api.stripe.com.
        # Set here rather than through dj-stripe's STRIPE_API_HOST, whose check warns about it.
        if settings.STRIPE_API_BASE:
            stripe.api_base = settings.STRIPE_API_BASE
        # Connects the webhook receivers, after dj-stripe's own (djstripe comes first in
        # INSTALLED_APPS), so ours see the objects dj-stripe has just synced.
        from billing import webhooks  # noqa: F401
