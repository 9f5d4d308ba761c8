"""Writes for billing, one module per topic; callers import from the module
(``from billing.services.reports import usage_report_send``):

- ``catalog``: tiers pushed to Stripe (Product, base and metered Prices, the billing Meter).
- ``checkout``: the account's Stripe customer, Checkout and customer-portal sessions.
- ``subscriptions``: the account's billing state kept in step with its subscription, and the
  Stripe events that change it.
- ``grace``: the grace period after a failed payment, ended.
- ``reconcile``: Stripe re-read to repair what a lost webhook left behind; the operator's
  re-sync.
- ``webhook_endpoint``: the portal's Stripe webhook endpoint.
- ``reports``: usage to Stripe, one meter event per account and window, once.
- ``errors``: ``BillingError``.

Two rules run through these modules:

- **Stripe decides, webhooks tell.** An account's tier changes only from what Stripe says about
  its subscription (a webhook, or the reconcile job re-reading it), never from a browser redirect.
  Every event handler re-reads the subscription's current state and applies that, so events that
  arrive late, twice or out of order converge on the same result.
- **No database transaction is held open across a Stripe call.** Calls go out first; the rows
  are written after, in short transactions.
"""
