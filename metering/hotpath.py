"""Settling a metered request after its view ran (filled in by the metering work)."""

from django.http import HttpRequest, HttpResponse


def settle(request: HttpRequest, response: HttpResponse) -> None:
    """Give back the units of a non-billable outcome and add the rate-limit headers."""
