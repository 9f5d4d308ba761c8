"""What operators can do to the accounts ticked in the list, one row per action: who may, what
they confirm, the service that does it (audited, and the API's key cache told) and what they are
told. ``actions.py`` runs them."""

from collections.abc import Iterable

import stripe

from billing.services.errors import BillingError
from billing.services.reconcile import accounts_stripe_resync
from billing.services.reports import account_meter_reports_resend
from billing.services.switch import subscription_cancel_now
from metering.services import quota_credit_grant
from portal.admin.actions import AccountAction, Changed, Confirmation
from portal.admin.forms import (
    ChangeTierForm,
    GrantCreditForm,
    NoteForm,
    RevokeKeysForm,
    SuspendForm,
)
from portal.models import Account, AuditEntry
from portal.services import (
    AccountActionError,
    account_keys_revoke,
    account_reinstate,
    account_suspend,
    account_tier_change,
)

# What a Stripe-calling action reports instead of failing the whole page.
STRIPE_ERRORS = (AccountActionError, BillingError, stripe.StripeError)


def stripe_not_changed(moved: Changed) -> Iterable[str]:
    subscribed = [account for account, _ in moved if account.stripe_subscription_id]
    if subscribed:
        # The portal does not rewrite subscriptions: Stripe keeps billing what it bills, and the
        # subscription's next event (or the daily reconcile) restores its tier.
        yield (
            "Stripe was not changed: "
            + "; ".join(
                f"{account.owner.email}'s subscription {account.stripe_subscription_id} "
                f"still bills {(account.subscribed_tier or account.tier).name}"
                for account in subscribed
            )
            + ". Its next event or the daily reconcile moves the account back to the "
            "subscribed tier; change the subscription in Stripe to make the move stick."
        )


def reports_not_sent(resent: Changed) -> Iterable[str]:
    for account, entry in resent:
        statuses = entry.after["reports"]
        left = sorted(ident for ident, status in statuses.items() if status != "sent")
        if left:
            yield (
                f"{account.owner.email}: {len(statuses) - len(left)} of {len(statuses)} "
                f"sent; not sent: {', '.join(left)} — see each report's last error."
            )


def resync_summary(account: Account, entry: AuditEntry) -> str:
    changed = {
        name: (entry.before[name], value)
        for name, value in entry.after.items()
        if entry.before.get(name) != value
    }
    summary = (
        ", ".join(f"{name} {old} → {new}" for name, (old, new) in changed.items())
        if changed
        else "already in step"
    )
    return f"Re-synced {account.owner.email} from Stripe: {summary}."


ACCOUNT_ACTIONS = [
    AccountAction(
        name="suspend",
        label="Suspend (keys get 403 with the reason)",
        permission="suspend_account",
        confirm=Confirmation(
            form=SuspendForm,
            title="Suspend accounts",
            explanation="Every API call with these accounts' keys will be refused (403) with "
            "the reason below, within seconds. Their keys, usage and billing stay as they are.",
            submit_label="Suspend",
        ),
        service=account_suspend,
        done="Suspended",
        unchanged="Already suspended for that reason:",
    ),
    AccountAction(
        name="reinstate",
        label="Reinstate suspended accounts",
        permission="suspend_account",
        confirm=Confirmation(
            form=NoteForm,
            title="Reinstate accounts",
            explanation="The keys of these accounts will work again within seconds.",
            submit_label="Reinstate",
        ),
        service=account_reinstate,
        done="Reinstated",
        unchanged="Not suspended, left as they were:",
    ),
    AccountAction(
        name="revoke_keys",
        label="Revoke all API keys",
        permission="revoke_keys",
        confirm=Confirmation(
            form=RevokeKeysForm,
            title="Revoke all API keys",
            explanation="Every key of these accounts that still works is revoked, rolled keys "
            "in their grace period included. This cannot be undone.",
            submit_label="Revoke all keys",
        ),
        service=account_keys_revoke,
        done="Revoked every key of",
        unchanged="No working keys to revoke:",
    ),
    AccountAction(
        name="change_tier",
        label="Move to a tier",
        permission="change_tier",
        confirm=Confirmation(
            form=ChangeTierForm,
            title="Move accounts to a tier",
            explanation="Rate limit, included units, overage policy and allowed endpoints "
            "follow the new tier within seconds. Any tier can be chosen, private ones included. "
            "Stripe subscriptions are not changed.",
            submit_label="Move",
        ),
        service=account_tier_change,
        done="Moved to {tier.name}:",
        unchanged="Already on {tier.name}:",
        warnings=stripe_not_changed,
    ),
    AccountAction(
        name="grant_credit",
        label="Grant extra units for this period",
        permission="grant_credit",
        confirm=Confirmation(
            form=GrantCreditForm,
            title="Grant extra units",
            explanation="The units are added to each account's quota for its current period, "
            "within seconds; they lapse when the period ends.",
            submit_label="Grant",
        ),
        service=quota_credit_grant,
        done="Granted {units:,} extra units this period to",
    ),
    AccountAction(
        name="cancel_subscription_now",
        label="Cancel the subscription now",
        permission="cancel_subscription",
        confirm=Confirmation(
            form=NoteForm,
            title="Cancel subscriptions now",
            explanation="Billing stops at the next whole minute: the usage before it is "
            "reported to Stripe, then Stripe cancels the subscription with a final invoice for "
            "it (about three minutes later). From that minute on each account is on the default "
            "tier. To let a subscription run to its period's end, the developer cancels in "
            "Manage billing instead.",
            submit_label="Cancel subscriptions now",
        ),
        service=subscription_cancel_now,
        done="Billing ends at the next minute for",
        unchanged="No running subscription:",
        errors=STRIPE_ERRORS,
    ),
    AccountAction(
        name="resend_reports",
        label="Re-send failed usage reports",
        permission="resend_reports",
        service=account_meter_reports_resend,
        done="Re-sent the failed usage reports of",
        unchanged="No failed or stale usage reports:",
        errors=STRIPE_ERRORS,
        warnings=reports_not_sent,
    ),
    AccountAction(
        name="resync_stripe",
        label="Re-sync from Stripe",
        permission="resync_stripe",
        # Billing's reconcile, run once for all of them: if Stripe cannot be reached, none is
        # changed and the operator is told once.
        service=accounts_stripe_resync,
        batch=True,
        describe=resync_summary,
        unchanged="No Stripe customer, nothing to re-sync:",
        errors=STRIPE_ERRORS,
    ),
]
