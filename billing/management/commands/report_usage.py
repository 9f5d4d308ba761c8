"""Report rolled-up usage to Stripe now: what the hourly beat job does, by hand."""

from django.core.management.base import BaseCommand, CommandError

from billing.models import MeterReport
from billing.services.reports import usage_report_run


class Command(BaseCommand):
    help = (
        "Send every closed window's usage to Stripe (one meter event per account and window) "
        "and re-send what an earlier run left failed. Safe to run at any time, or twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--period-close-only",
            action="store_true",
            help="Only the final windows of periods that have just ended (the 5-minute check).",
        )

    def handle(self, *args, period_close_only: bool, **options):
        result = usage_report_run(period_close_only=period_close_only)
        for report in result.reports:
            if report.status != MeterReport.Status.SENT:
                self.stdout.write(
                    self.style.WARNING(f"{report.identifier}: {report.status}: {report.last_error}")
                )
        sent = result.count(MeterReport.Status.SENT)
        units = sum(r.units for r in result.reports if r.status == MeterReport.Status.SENT)
        self.stdout.write(
            f"{result.accounts} account(s): {sent} report(s) sent ({units} units), "
            f"{result.count(MeterReport.Status.FAILED)} failed, "
            f"{result.count(MeterReport.Status.STALE)} stale."
        )
        if result.errors:
            raise CommandError(
                f"{result.errors} account(s) failed (see the log); their reports are pending "
                "and the next run sends them with the same identifiers."
            )
