"""Email the budget amounts developers' usage charges have reached (the beat job, run here)."""

from django.core.management.base import BaseCommand

from billing.models import BudgetAlert
from billing.services.budgets import budget_alerts_send


class Command(BaseCommand):
    help = (
        "Email each budget alert amount a developer's usage charges have reached this billing "
        "period, once per period (the job beat runs every five minutes)."
    )

    def handle(self, *args, **options):
        handled = budget_alerts_send()
        for alert in handled:
            self.stdout.write(
                f"account {alert.account_id}: {alert.threshold_cents} cents {alert.status}"
            )
        sent = sum(1 for alert in handled if alert.status == BudgetAlert.Status.SENT)
        self.stdout.write(f"{sent} budget alert(s) sent.")
