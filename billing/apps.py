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
        # Our StripeClient and most of dj-stripe pass STRIPE_API_VERSION with each call, but
        # some dj-stripe calls go through the module-level SDK with no version (2.11 lists a
        # product's features with ``stripe.Product.list_features`` on every product sync), and
        # those would carry the SDK's own version: "your API calls to Stripe use the API version
        # that was current when the SDK was released" (Set a Stripe API version,
        # https://docs.stripe.com/sdks/set-version). Pin the module-level default too.
        stripe.api_version = settings.STRIPE_API_VERSION
        # The usage discrepancies' admin, a module of its own beside billing.admin.
        import billing.admin_discrepancies  # noqa: F401

        # Connects the webhook receivers, after dj-stripe's own (djstripe comes first in
        # INSTALLED_APPS), so ours see the objects dj-stripe has just synced.
        from billing import receivers, webhooks  # noqa: F401
