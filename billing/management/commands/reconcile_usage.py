"""Compare our usage reports with Stripe's meter event summaries, re-send what Stripe lost and
flag the rest (the daily job, run by hand)."""

import stripe
from django.core.management.base import BaseCommand, CommandError

from billing.services.usage_reconcile import UsageCheck, usage_reconcile


class Command(BaseCommand):
    help = (
        "Compare each linked account's usage reports (current and previous period) with "
        "Stripe's meter event summaries; re-send what Stripe lost, record the rest as "
        "discrepancies."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--account", type=int, action="append", dest="accounts", help="Only this account id."
        )

    def handle(self, *args, **options):
        try:
            checks = usage_reconcile(account_ids=options["accounts"])
        except stripe.StripeError as error:
            raise CommandError(f"Stripe could not be read; nothing changed: {error}") from error
        styles = {
            UsageCheck.Outcome.DISCREPANCY: self.style.WARNING,
            UsageCheck.Outcome.ERROR: self.style.ERROR,
        }
        for check in checks:
            style = styles.get(check.outcome)
            if style is not None or check.resent or check.discrepancy is not None:
                self.stdout.write((style or self.style.SUCCESS)(check.describe()))
        flagged = sum(
            1 for check in checks if check.discrepancy is not None and check.discrepancy.is_open
        )
        resent = sum(len(check.resent) for check in checks)
        self.stdout.write(
            f"{len(checks)} period(s) compared, {resent} report(s) re-sent, "
            f"{flagged} open discrepancy(ies)."
        )
