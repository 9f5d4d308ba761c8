"""Push tiers to Stripe: a Product per paid tier, its base and metered Prices, the one Meter."""

import stripe
from django.core.management.base import BaseCommand, CommandError

from billing.models import Tier
from billing.services.catalog import tiers_sync_to_stripe
from billing.services.errors import BillingError


class Command(BaseCommand):
    help = (
        "Push tiers to Stripe (Product, licensed base Price, metered Price on the billing Meter). "
        "Safe to re-run: objects that already match are left alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="Only these tiers (default: every tier).")

    def handle(self, *args, slugs: list[str], **options):
        tiers = None
        if slugs:
            tiers = list(Tier.objects.filter(slug__in=slugs))
            unknown = sorted(set(slugs) - {tier.slug for tier in tiers})
            if unknown:
                raise CommandError(f"No tier with slug {', '.join(unknown)}")
        try:
            results = tiers_sync_to_stripe(tiers=tiers)
        except (BillingError, stripe.StripeError) as error:
            raise CommandError(f"Stripe refused the sync: {error}") from error
        for result in results:
            style = self.style.SUCCESS if result.changed else (lambda text: text)
            self.stdout.write(style(result.describe()))
