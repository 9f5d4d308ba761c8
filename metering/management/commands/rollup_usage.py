"""``manage.py rollup_usage``: run the rollup job by hand (beat runs it every minute)."""

from django.core.management.base import BaseCommand

from metering.services import ROLLUP_GRACE_SECONDS, usage_rollup


class Command(BaseCommand):
    help = (
        "Move the usage counters of minutes that ended more than "
        f"{ROLLUP_GRACE_SECONDS} s ago into UsageRollup rows. Safe to run at any time, "
        "and again after a crash. In the embedded mode the counters live in the web process, "
        "which runs this job itself; run by hand there, it only sees its own (empty) counters."
    )

    def handle(self, *args, **options):
        result = usage_rollup()
        self.stdout.write(
            f"{result.buckets} buckets: {result.applied} applied, "
            f"{result.already_applied} already applied; {result.rows} rows, "
            f"{result.units} units, {result.requests} requests"
        )
