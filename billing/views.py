"""Pricing and billing pages, and the two buttons that leave for Stripe (Checkout, portal), for
the organisation the member acts for: the billing page and its invoices need
``INVOICES_VIEW``, a tier change or Stripe's portal (card, plan, cancel) ``TIER_CHANGE``, a
budget ``BUDGET_MANAGE`` (portal.permissions)."""

import logging
import time

import stripe
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from billing.forms import BudgetForm
from billing.models import Budget, Tier
from billing.money import money_text
from billing.projection import budget_standing, invoice_projection_for
from billing.selectors import (
    SUBSCRIBED_STATUSES,
    account_tier_set_by_operator,
    invoice_list_for_account,
    tier_list_public,
    tier_switch_pending,
)
from billing.services.budgets import budget_remove, budget_set
from billing.services.checkout import billing_portal_session_create, checkout_session_create
from billing.services.errors import BillingError
from billing.services.switch import tier_switch_request
from portal.models import Account
from portal.organisation_access import membership_current_or_none, organisation_for
from portal.permissions import Action
from portal.principal import AuthenticatedHttpRequest

logger = logging.getLogger(__name__)

# How long the billing page waits (refreshing itself) for the webhook after Checkout.
CHECKOUT_WAIT_SECONDS = 60
CHECKOUT_SESSION_KEY = "billing_checkout"
STRIPE_DOWN = "Stripe could not be reached, so nothing was charged. Please try again in a minute."


def _redirect_303(url: str) -> HttpResponseRedirect:
    # 303: the browser follows a POST's redirect with a GET, whatever the target.
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


@require_safe
def pricing(request: HttpRequest) -> HttpResponse:
    membership = membership_current_or_none(request)
    account = membership.account if membership is not None else None
    context = {
        "tiers": list(tier_list_public()),
        "account": account,
        # None for visitors: no tier is marked as theirs.
        "current_tier_id": account.tier_id if account is not None else None,
        "subscribed": account is not None and account.payment_status in SUBSCRIBED_STATUSES,
        "set_by_operator": account is not None and account_tier_set_by_operator(account),
        "cancelled": request.GET.get("checkout") == "cancelled",
    }
    return render(request, "billing/pricing.html", context)


@login_required
@require_safe
@never_cache
def billing_overview(request: AuthenticatedHttpRequest) -> HttpResponse:
    account = organisation_for(request, Action.INVOICES_VIEW).account
    pending = _checkout_pending(request, account)
    return _billing_page(request, account, checkout=pending)


def _billing_page(
    request: HttpRequest,
    account: Account,
    *,
    checkout: dict | None = None,
    budget_form: BudgetForm | None = None,
    status: int = 200,
) -> HttpResponse:
    tier = account.subscribed_tier or account.tier
    budget = Budget.objects.filter(account=account).first()
    projection = invoice_projection_for(account)
    context = {
        "account": account,
        "period": account.present_period(),
        "invoices": invoice_list_for_account(account),
        "subscribed": account.payment_status in SUBSCRIBED_STATUSES,
        "set_by_operator": account_tier_set_by_operator(account),
        "checkout": checkout,
        "switch": tier_switch_pending(account),
        "projection": projection,
        "budget": budget,
        "budget_standing": budget_standing(budget, projection),
        # A budget is offered where usage costs money and an invoice is coming.
        "budget_form": budget_form
        or (BudgetForm.for_budget(budget, tier=tier) if projection and tier.bills_usage else None),
    }
    return render(request, "billing/billing.html", context, status=status)


@login_required
@require_POST
def budget(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Set, change or remove the organisation's budget (the URL names no account: nobody
    reaches another's)."""
    account = organisation_for(request, Action.BUDGET_MANAGE).account
    if request.POST.get("action") == "remove":
        if budget_remove(account=account):
            messages.success(request, "Budget removed: no more budget emails.")
        return _redirect_303(reverse("billing:overview") + "#budget")
    tier = account.subscribed_tier or account.tier
    form = BudgetForm(request.POST, tier=tier)
    if form.is_valid():
        try:
            saved = budget_set(
                account=account,
                amount_cents=form.cleaned_data["amount"],
                alert_percents=form.cleaned_data["alert_percents"],
                alert_amounts_cents=form.cleaned_data["alert_amounts"],
            )
        except BillingError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request,
                f"Budget set: {money_text(saved.amount_cents, tier.currency)} of usage charges "
                "a period. We email you at the amounts you chose.",
            )
            return _redirect_303(reverse("billing:overview") + "#budget")
    return _billing_page(request, account, budget_form=form, status=400)


def _checkout_pending(request: HttpRequest, account: Account) -> dict | None:
    """After Checkout, Stripe's redirect usually beats its webhook: until the account is on the
    tier just bought, the page says so and refreshes itself, for up to a minute."""
    started = request.session.get(CHECKOUT_SESSION_KEY)
    if request.GET.get("checkout") != "success" or not started:
        return None
    if account.tier.slug == started["tier"]:
        del request.session[CHECKOUT_SESSION_KEY]
        messages.success(request, f"Payment received: you are now on {account.tier.name}.")
        return None
    waited = time.time() - started["at"]
    return {"tier": started["name"], "waiting": waited < CHECKOUT_WAIT_SECONDS}


@login_required
@require_POST
def checkout(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Upgrade: off to Stripe Checkout for the chosen tier; a subscribed developer switches
    tiers here instead, from the next whole minute (billing.services.switch)."""
    account = organisation_for(request, Action.TIER_CHANGE).account
    tier = get_object_or_404(Tier, slug=request.POST.get("tier", ""), is_public=True)
    if account.payment_status in SUBSCRIBED_STATUSES and account.stripe_customer is not None:
        return _switch(request, account, tier)
    try:
        url = checkout_session_create(account=account, tier=tier)
    except BillingError as error:
        messages.error(request, str(error))
        return redirect("billing:pricing")
    except stripe.StripeError:
        logger.exception("Checkout for account %s failed", account.pk)
        messages.error(request, STRIPE_DOWN)
        return redirect("billing:pricing")
    request.session[CHECKOUT_SESSION_KEY] = {
        "tier": tier.slug,
        "name": tier.name,
        "at": time.time(),
    }
    return _redirect_303(url)


def _switch(request: HttpRequest, account: Account, tier: Tier) -> HttpResponse:
    try:
        switch = tier_switch_request(account=account, tier=tier)
    except BillingError as error:
        messages.info(request, str(error))
        return _redirect_303(reverse("billing:overview"))
    old = switch.from_tier.name if switch.from_tier is not None else "your current plan"
    messages.success(
        request,
        f"Switching to {tier.name} at {switch.effective_at:%H:%M} UTC: usage until then is billed "
        f"at {old}'s prices, usage from then on at {tier.name}'s.",
    )
    return _redirect_303(reverse("billing:overview"))


@login_required
@require_POST
def portal(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Manage billing: off to the Stripe customer portal (card, tier, cancel, invoices)."""
    return _leave_for_portal(request, organisation_for(request, Action.TIER_CHANGE).account)


def _leave_for_portal(request: HttpRequest, account: Account) -> HttpResponse:
    try:
        url = billing_portal_session_create(account=account)
    except BillingError as error:
        messages.info(request, str(error))
        return redirect("billing:pricing")
    except stripe.StripeError:
        logger.exception("Customer portal for account %s failed", account.pk)
        messages.error(request, STRIPE_DOWN)
        return redirect("billing:overview")
    return _redirect_303(url)
