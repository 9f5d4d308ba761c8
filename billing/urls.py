from django.urls import path

from billing import views, webhooks

app_name = "billing"

urlpatterns = [
    path("pricing/", views.pricing, name="pricing"),
    path("billing/", views.billing_overview, name="overview"),
    path("billing/checkout/", views.checkout, name="checkout"),
    path("billing/portal/", views.portal, name="portal"),
    path("billing/budget/", views.budget, name="budget"),
    # Thin events (API v2) from our Stripe event destination; v1 events go to dj-stripe's view.
    path("stripe/events/", webhooks.stripe_thin_event, name="stripe-thin-events"),
]

# v1 events: dj-stripe's webhook URL and name (``djstripe:djstripe_webhook_by_uuid``, which
# dj-stripe reverses itself), served by our view, which checks a delivery before handing it
# to dj-stripe's; config/urls.py includes these instead of ``djstripe.urls``.
djstripe_urlpatterns = (
    [
        path(
            "webhook/<uuid:uuid>/",
            webhooks.stripe_webhook,
            name="djstripe_webhook_by_uuid",
        ),
    ],
    "djstripe",
)
