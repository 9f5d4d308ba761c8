from django.core.management.base import BaseCommand

from billing.models import TierSwitch
from billing.services.switch import tier_switches_apply


class Command(BaseCommand):
    help = (
        "Apply the tier switches that are due: report each account's usage before its switch "
        "minute, then move its Stripe subscription to the new tier's prices. Runs every minute "
        "under beat; safe to run at any time."
    )

    def handle(self, *args, **options) -> None:
        switches = tier_switches_apply()
        for switch in switches:
            state = switch.get_status_display().lower()
            note = f" ({switch.last_error})" if switch.last_error else ""
            self.stdout.write(f"Account {switch.account_id} → {switch.to_tier}: {state}{note}")
        applied = sum(1 for switch in switches if switch.status == TierSwitch.Status.APPLIED)
        self.stdout.write(f"{applied} of {len(switches)} due switches applied.")
