"""Usage reporting: rolled-up usage to Stripe, one meter event per account and window, once.

The ledger comes first. For each closed window one transaction writes the ``MeterReport`` row,
with an identifier derived from (account, window), and claims the ``UsageRollup`` rows it
covers; Stripe is called only after that commit, and the row is marked sent after the call.
Whatever fails in between (a timeout, a 500, a killed worker, a crash before the mark), the
next attempt sends the same identifier, and Stripe, which keeps identifiers for at least 24
hours, records it once: its "duplicate identifier" refusal means the first one landed.

Windows follow the clock's hours, cut at the billing period's boundaries so that every unit is
billed in the period it was used in; the event's timestamp is the window's last second. The
whole design and each failure case are in docs/architecture.md, "Reporting and alerts".
"""

from billing.services.reports.errors import MeterReportAlreadySent, MeterReportRefused
from billing.services.reports.ledger import STALE_MARGIN, usage_report_prepare
from billing.services.reports.repair import (
    account_meter_reports_resend,
    meter_report_confirm,
    usage_report_resend,
)
from billing.services.reports.runs import ReportRunResult, usage_report_account, usage_report_run
from billing.services.reports.sending import IDENTIFIER_MEMORY, MAX_TRIES, usage_report_send
from billing.services.reports.windows import (
    STRIPE_ACCEPTS_PAST,
    SUBSCRIBED,
    ReportWindow,
    report_windows,
    usage_report_due_accounts,
)

__all__ = [
    "IDENTIFIER_MEMORY",
    "MAX_TRIES",
    "STALE_MARGIN",
    "STRIPE_ACCEPTS_PAST",
    "SUBSCRIBED",
    "MeterReportAlreadySent",
    "MeterReportRefused",
    "ReportRunResult",
    "ReportWindow",
    "account_meter_reports_resend",
    "meter_report_confirm",
    "report_windows",
    "usage_report_account",
    "usage_report_due_accounts",
    "usage_report_prepare",
    "usage_report_resend",
    "usage_report_run",
    "usage_report_send",
]
