"""Re-read every subscription (and recent invoices) from Stripe and repair what a lost webhook
left behind."""

import stripe
from django.core.management.base import BaseCommand, CommandError

from billing.services.reconcile import invoices_reconcile, subscriptions_reconcile


class Command(BaseCommand):
    help = "Re-sync each account's subscription from Stripe and repair its tier and status."

    def handle(self, *args, **options):
        try:
            report = subscriptions_reconcile()
            invoices = invoices_reconcile()
        except stripe.StripeError as error:
            raise CommandError(f"Stripe could not be read; nothing changed: {error}") from error
        for change in report:
            self.stdout.write(self.style.WARNING(f"repaired {change.describe()}"))
        self.stdout.write(f"{len(report)} account(s) repaired, {len(invoices)} invoice(s) stored.")
