"""Writes for billing, one module per topic; callers import from the module
(``from billing.services.reports import usage_report_send``):

- ``catalog``: tiers pushed to Stripe (Product, base and metered Prices, the billing Meter).
- ``checkout``: the account's Stripe customer, Checkout and customer-portal sessions.
- ``subscriptions``: the account's billing state kept in step with its subscription, and the
  Stripe events that change it.
- ``plan_changes``: a plan the customer bought or switched (or Stripe changed), in the audit log.
- ``grace``: the grace period after a failed payment, ended.
- ``reconcile``: Stripe re-read to repair what a lost webhook left behind; the operator's
  re-sync.
- ``webhook_endpoint``: the portal's Stripe webhook endpoint and the event destination for
  Stripe's thin events.
- ``reports``: usage to Stripe, one meter event per account and window, once.
- ``switch``: a subscription moved to another tier (or cancelled now) at a whole minute, each
  price billed exactly its own stretch.
- ``thin_events``: Stripe's meter error reports, applied to the reports they name.
- ``deliveries``: what every delivery from Stripe passes at both webhook doors before anything
  of it is stored (size, signature, a timestamp within the tolerance either way, an event's
  fields).
- ``usage_reconcile``: our reports against Stripe's meter summaries (the daily reconcile).
- ``money_audit``: the money audit of one account and period.
- ``budgets``: a developer's budget for usage charges and its emails, once per amount and period.
- ``meter_summaries``: Stripe's meter event summaries, read by both.
- ``errors``: ``BillingError``.

Two rules run through these modules:

- **Stripe decides, webhooks tell.** An account's tier changes only from what Stripe says about
  its subscription (a webhook, the reconcile job re-reading it, or the answer to our own
  switch), never from a browser redirect.
  Every event handler re-reads the subscription's current state and applies that, so events that
  arrive late, twice or out of order converge on the same result.
- **No database transaction is held open across a Stripe call.** Calls go out first; the rows
  are written after, in short transactions.
"""
