"""The developer's usage page."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.selectors import account_for_user
from portal.services import account_create


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    account = account_for_user(request.user) or account_create(owner=request.user)
    return render(request, "metering/usage.html", {"account": account})
