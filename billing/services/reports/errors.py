"""Why an operator's re-send of a usage report does not go ahead."""


class MeterReportRefused(Exception):
    """An operator's re-send that cannot go ahead; the message says why."""


class MeterReportAlreadySent(MeterReportRefused):
    """Stripe has this report; sending it again is refused."""
