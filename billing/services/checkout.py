"""The account's Stripe customer, and the two sessions that send a developer to Stripe:
Checkout (buy a tier) and the customer portal (switch tier, card, cancel, invoices)."""

from typing import Any

import stripe
from django.conf import settings
from django.urls import reverse
from djstripe.models import Customer
from stripe.params.checkout import SessionCreateParamsLineItem

from billing.models import Tier
from billing.services.errors import BillingError
from billing.stripe_api import as_dict, is_missing, stripe_client
from billing.stripe_idempotency import create_once
from portal.models import Account


def account_stripe_customer_ensure(*, account: Account, replace: bool = False) -> Customer:
    """The account's Stripe customer, created on first need (through dj-stripe, so the user is
    its subscriber). ``replace`` makes a new one when Stripe no longer knows the linked one
    (the emulator restarted; a customer deleted in the dashboard).

    Looked up on Stripe before it is created, so a create whose 500 hid a success (or whose
    answer was lost before we saved the link) is found, not made twice; a replayed 500 moves on
    to the next idempotency key instead of blocking Checkout for a day
    (billing.stripe_idempotency)."""
    if account.stripe_customer is not None and not replace:
        return account.stripe_customer
    replaced = account.stripe_customer.id if account.stripe_customer is not None else ""
    found = _account_customer_find(account, other_than=replaced)
    if found is not None:
        customer = Customer.sync_from_stripe_data(found)
    else:
        customer = create_once(
            lambda key: Customer.create(
                account.owner,
                idempotency_key=key,
                livemode=settings.STRIPE_LIVE_MODE,
                metadata={"account_id": str(account.pk)},
            ),
            "customer",
            account.pk,
            replaced,
        )
    Account.objects.filter(pk=account.pk).update(stripe_customer=customer)
    account.stripe_customer = customer
    return customer


def account_stripe_customer_email_sync(*, account: Account) -> Customer | None:
    """Give the account's Stripe customer its primary owner's email, after ownership changed
    hands: Stripe's receipts and invoice emails go to the customer's address, and the lookup
    above finds a customer by it. Only ``email`` is sent: "Any parameters not provided will be
    left unchanged" (Update a customer, https://docs.stripe.com/api/customers/update). None: no
    customer yet (Checkout creates it with the owner's email then), or Stripe no longer knows
    it (the next Checkout replaces it)."""
    account = Account.objects.select_related("owner", "stripe_customer").get(pk=account.pk)
    customer = account.stripe_customer
    if customer is None or customer.email == account.owner.email:
        return customer
    try:
        updated = stripe_client().v1.customers.update(
            customer.id, params={"email": account.owner.email}
        )
    except stripe.InvalidRequestError as error:
        if is_missing(error):
            return None
        raise
    return Customer.sync_from_stripe_data(as_dict(updated))


def _account_customer_find(account: Account, *, other_than: str) -> dict[str, Any] | None:
    """A customer Stripe already holds for this account: one with the owner's email (the list's
    ``email`` filter, "A case-sensitive filter on the list based on the customer's email
    field", List all customers, https://docs.stripe.com/api/customers/list) and our account id
    in its metadata. None: there is none (other than ``other_than``, the one being replaced)."""
    email = account.owner.email
    if not email:
        return None
    customers = stripe_client().v1.customers.list(params={"email": email, "limit": 100})
    for customer in customers.auto_paging_iter():
        found = as_dict(customer)
        ours = (found.get("metadata") or {}).get("account_id") == str(account.pk)
        if ours and found["id"] != other_than:
            return found
    return None


def _site_url(name: str, query: str = "") -> str:
    return f"{settings.SITE_URL}{reverse(name)}{query}"


def checkout_session_create(*, account: Account, tier: Tier) -> str:
    """A Stripe Checkout Session for ``tier``'s base and metered prices; returns its URL.

    Nothing changes on the account here: the tier moves when Stripe's webhook says the
    subscription exists (``checkout.session.completed`` / ``customer.subscription.created``).
    """
    if not tier.is_public or not tier.is_paid:
        raise BillingError(f"{tier.name} cannot be bought online.")
    if tier.stripe_metered_price is None or not tier.stripe_metered_price.active:
        raise BillingError(f"{tier.name} is not on sale yet; please try again later.")
    line_items: list[SessionCreateParamsLineItem] = []
    if tier.stripe_base_price is not None:
        line_items.append({"price": tier.stripe_base_price.id, "quantity": 1})
    # A metered price takes no quantity: Stripe bills what the meter reports.
    line_items.append({"price": tier.stripe_metered_price.id})
    metadata = {"account_id": str(account.pk), "tier": tier.slug}
    client = stripe_client()

    def create(customer: Customer) -> Any:
        return client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer.id,
                "client_reference_id": str(account.pk),
                "line_items": line_items,
                "metadata": metadata,
                "subscription_data": {"metadata": metadata},
                "success_url": _site_url("billing:overview", "?checkout=success"),
                "cancel_url": _site_url("billing:pricing", "?checkout=cancelled"),
            }
        )

    customer = account_stripe_customer_ensure(account=account)
    try:
        session = create(customer)
    except stripe.InvalidRequestError as error:
        if not (is_missing(error) and getattr(error, "param", None) == "customer"):
            raise
        session = create(account_stripe_customer_ensure(account=account, replace=True))
    return session.url


# Marks the customer-portal configuration this portal manages among the account's others.
PORTAL_CONFIGURATION_METADATA = {"managed_by": "meterdesk"}


def portal_configuration_features() -> dict[str, Any]:
    """What the customer portal offers: card and invoices, and cancelling at the period's end
    (the tier is kept until then). Not switching tiers: a switch goes through the pricing page
    (``billing.services.switch``), which reports the old tier's usage before Stripe switches;
    a switch in the portal would leave up to an hour of it to neither price."""
    return {
        "invoice_history": {"enabled": True},
        "payment_method_update": {"enabled": True},
        "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
        "subscription_update": {"enabled": False},
    }


def is_our_portal_configuration(configuration: Any) -> bool:
    metadata = configuration.metadata or {}
    return all(metadata.get(key) == value for key, value in PORTAL_CONFIGURATION_METADATA.items())


def portal_configuration_ensure(*, client: stripe.StripeClient | None = None) -> str:
    """The id of the customer-portal configuration for this portal's tiers, created or brought
    up to date. Stripe's portal needs a configuration, either passed with each session or
    saved as the default in the Dashboard ("Configure the customer portal",
    https://docs.stripe.com/customer-management/configure-portal); this one is created here
    and kept as ``portal_configuration_features`` says, whatever was edited in the Dashboard."""
    client = client or stripe_client()
    features = portal_configuration_features()
    ours = next(
        (
            configuration
            for configuration in client.v1.billing_portal.configurations.list(
                params={"active": True, "limit": 100}
            ).auto_paging_iter()
            if is_our_portal_configuration(configuration)
        ),
        None,
    )
    params: dict[str, Any] = {
        "features": features,
        "default_return_url": _site_url("billing:overview"),
        "metadata": PORTAL_CONFIGURATION_METADATA,
    }
    # The SDK types these params as nested TypedDicts; ours are plain dicts Stripe validates.
    if ours is None:
        created = client.v1.billing_portal.configurations.create(params=params)  # type: ignore[arg-type]
        return created.id
    if _differs(as_dict(ours.features), features):
        client.v1.billing_portal.configurations.update(ours.id, params=params)  # type: ignore[arg-type]
    return ours.id


def billing_portal_session_create(*, account: Account) -> str:
    """A Stripe customer-portal session (switch tier, card, cancel, invoices); returns its URL."""
    if account.stripe_customer is None:
        raise BillingError("You have no subscription to manage yet.")
    client = stripe_client()
    session = client.v1.billing_portal.sessions.create(
        params={
            "customer": account.stripe_customer.id,
            "configuration": portal_configuration_ensure(client=client),
            "return_url": _site_url("billing:overview"),
        }
    )
    return session.url


def _differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether any setting in ``wanted`` has another value in ``current`` (Stripe's copy
    carries more settings than we send; only ours are compared)."""
    for name, value in wanted.items():
        if isinstance(value, dict):
            if not isinstance(current.get(name), dict) or _differs(current[name], value):
                return True
        elif current.get(name) != value:
            return True
    return False
