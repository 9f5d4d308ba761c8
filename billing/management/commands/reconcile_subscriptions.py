"""Re-read every subscription from Stripe and repair accounts a lost webhook left behind."""

import stripe
from django.core.management.base import BaseCommand, CommandError

from billing.services import subscriptions_reconcile


class Command(BaseCommand):
    help = "Re-sync each account's subscription from Stripe and repair its tier and status."

    def handle(self, *args, **options):
        try:
            report = subscriptions_reconcile()
        except stripe.StripeError as error:
            raise CommandError(f"Stripe could not be read; nothing changed: {error}") from error
        for change in report:
            self.stdout.write(self.style.WARNING(f"repaired {change.describe()}"))
        self.stdout.write(f"{len(report)} account(s) repaired.")
