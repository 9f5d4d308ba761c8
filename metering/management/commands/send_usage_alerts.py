"""Email the usage alerts due now: what the 5-minute beat job does, by hand."""

from django.core.management.base import BaseCommand

from metering.alerts import usage_alerts_run
from metering.models import UsageAlert


class Command(BaseCommand):
    help = (
        "Claim and email each crossed usage threshold (80/100/120 % or the tier's own) once per "
        "period, and retry the alerts whose email failed. Safe to run at any time, or twice."
    )

    def handle(self, *args, **options):
        handled = usage_alerts_run()
        for alert in handled:
            if alert.status == UsageAlert.Status.FAILED:
                self.stdout.write(
                    self.style.WARNING(
                        f"{alert.threshold}% for {alert.account.email}: {alert.last_error}"
                    )
                )
        counts = {status: 0 for status in UsageAlert.Status.values}
        for alert in handled:
            counts[alert.status] += 1
        self.stdout.write(
            f"{counts['sent']} alert email(s) sent, {counts['failed']} failed "
            f"(retried next run), {counts['skipped']} skipped."
        )
