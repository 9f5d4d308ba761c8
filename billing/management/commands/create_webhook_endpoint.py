"""Register the portal's Stripe webhook endpoint (dj-stripe keeps its signing secret)."""

import stripe
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing.services.webhook_endpoint import WEBHOOK_EVENTS, webhook_endpoint_ensure


class Command(BaseCommand):
    help = (
        "Create the Stripe webhook endpoint for SITE_URL (or --base-url) unless Stripe already "
        "has it, store its signing secret through dj-stripe, and print the URL."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default=settings.SITE_URL,
            help="Public address of this portal, as Stripe will reach it (default: SITE_URL).",
        )

    def handle(self, *args, base_url: str, **options):
        try:
            endpoint, created = webhook_endpoint_ensure(base_url=base_url)
        except stripe.StripeError as error:
            raise CommandError(f"Stripe refused the webhook endpoint: {error}") from error
        verb = "Created" if created else "Already registered:"
        self.stdout.write(self.style.SUCCESS(f"{verb} webhook endpoint {endpoint.id}"))
        self.stdout.write(f"  URL     {endpoint.url}")
        self.stdout.write(f"  events  {', '.join(WEBHOOK_EVENTS)}")
        if settings.STRIPE_USE_EMULATOR or settings.STRIPE_API_BASE:
            self.stdout.write("  The Stripe emulator posts signed events to this URL by itself.")
        else:
            mode = "live" if settings.STRIPE_LIVE_MODE else "test"
            self.stdout.write(
                f"  Stripe ({mode} mode) now sends events to this URL; it must be reachable from "
                "the internet over HTTPS.\n"
                "  The signing secret is stored in dj-stripe's WebhookEndpoint row (admin: "
                "Djstripe > Webhook endpoints); nothing to copy.\n"
                "  Developing locally? Run `stripe listen --forward-to "
                f"{endpoint.url}` and, with DEBUG=true, dj-stripe accepts the CLI's secret sent "
                "as X-Djstripe-Webhook-Secret."
            )
