"""Register the portal's Stripe webhook endpoint (dj-stripe keeps its signing secret) and its
event destination for thin events (the meter error reports; billing keeps its secret)."""

from collections.abc import Callable, Sequence
from typing import Any

import stripe
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing.services.thin_events import METER_ERROR_EVENTS
from billing.services.webhook_endpoint import (
    WEBHOOK_EVENTS,
    event_destination_ensure,
    webhook_endpoint_ensure,
)


class Command(BaseCommand):
    help = (
        "Create the Stripe webhook endpoint and the thin-event destination (meter errors) for "
        "SITE_URL (or --base-url) unless Stripe already has them, store their signing secrets, "
        "and print the URLs."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default=settings.SITE_URL,
            help="Public address of this portal, as Stripe will reach it (default: SITE_URL).",
        )

    def handle(self, *args, base_url: str, **options):
        endpoint, created = self._ensure("webhook endpoint", webhook_endpoint_ensure, base_url)
        self._describe("webhook endpoint", created, endpoint.id, endpoint.url, WEBHOOK_EVENTS)
        destination, created = self._ensure("event destination", event_destination_ensure, base_url)
        self._describe(
            "event destination", created, destination.stripe_id, destination.url, METER_ERROR_EVENTS
        )
        if settings.STRIPE_USE_EMULATOR or settings.STRIPE_API_BASE:
            self.stdout.write("  The Stripe emulator posts signed events to these URLs by itself.")
        else:
            mode = "live" if settings.STRIPE_LIVE_MODE else "test"
            self.stdout.write(
                f"  Stripe ({mode} mode) now sends events to these URLs; they must be reachable "
                "from the internet over HTTPS.\n"
                "  The signing secrets are stored (dj-stripe's WebhookEndpoint row, admin: "
                "Djstripe > Webhook endpoints; the event destination's in the database); "
                "nothing to copy.\n"
                "  Developing locally? Run `manage.py stripe_listen --host 127.0.0.1 --port "
                "8000`: it forwards Stripe's events to a local endpoint holding the CLI's own "
                "secret (docs/stripe.md). Meter error reports (thin events) reach only the "
                "event destination's URL."
            )

    def _ensure(
        self, what: str, ensure: Callable[..., tuple[Any, bool]], base_url: str
    ) -> tuple[Any, bool]:
        try:
            return ensure(base_url=base_url)
        except stripe.StripeError as error:
            raise CommandError(f"Stripe refused the {what}: {error}") from error

    def _describe(
        self, what: str, created: bool, stripe_id: str, url: str, events: Sequence[str]
    ) -> None:
        verb = "Created" if created else "Already registered:"
        self.stdout.write(self.style.SUCCESS(f"{verb} {what} {stripe_id}"))
        self.stdout.write(f"  URL     {url}")
        self.stdout.write(f"  events  {', '.join(events)}")
