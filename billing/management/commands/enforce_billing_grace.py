"""Move accounts whose payment grace period has ended to the default tier."""

from django.core.management.base import BaseCommand

from billing.services.grace import account_enforce_grace


class Command(BaseCommand):
    help = (
        "Move past-due accounts whose grace period (BILLING_GRACE_DAYS) is over, and accounts "
        "whose cancel-at-period-end has passed, to the default tier."
    )

    def handle(self, *args, **options):
        moved = account_enforce_grace()
        for account_id in moved:
            self.stdout.write(f"account {account_id} moved to the default tier")
        self.stdout.write(f"{len(moved)} account(s) moved.")
