"""Pricing and billing pages."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing.selectors import tier_list_public
from portal.selectors import account_for_user
from portal.services import account_create


def pricing(request: HttpRequest) -> HttpResponse:
    account = account_for_user(request.user) if request.user.is_authenticated else None
    return render(request, "billing/pricing.html", {"tiers": tier_list_public(), "account": account})


@login_required
def billing_overview(request: HttpRequest) -> HttpResponse:
    account = account_for_user(request.user) or account_create(owner=request.user)
    return render(request, "billing/billing.html", {"account": account})
