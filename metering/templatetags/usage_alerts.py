"""The usage alert banner and the alert email setting, for the dashboard and the usage page."""

from django import template

from billing.models import Tier
from metering.alerts import ESSENTIAL_FROM_PERCENT, alert_thresholds, usage_alert_latest
from metering.forms import AlertSettingsForm
from metering.selectors import period_included_units
from portal.models import Account

register = template.Library()


@register.inclusion_tag("metering/_usage_alert_banner.html")
def usage_alert_banner(account: Account) -> dict:
    """The current period's highest crossed threshold, whether or not its email went out."""
    alert = usage_alert_latest(account)
    period_start, period_end = account.current_period()
    return {
        "alert": alert,
        "account": account,
        "included": period_included_units(account, period_start) if alert else 0,
        "period_end": period_end,
        "over": alert is not None and alert.threshold >= ESSENTIAL_FROM_PERCENT,
        "bills_overage": account.tier.overage_policy == Tier.OveragePolicy.BILL,
    }


@register.inclusion_tag("metering/_usage_alert_settings.html", takes_context=True)
def usage_alert_settings(context: template.Context, account: Account) -> dict:
    courtesy = [t for t in alert_thresholds(account.tier) if t < ESSENTIAL_FROM_PERCENT]
    return {
        "form": AlertSettingsForm(initial={"courtesy_alerts": not account.alerts_opt_out}),
        "courtesy": " and ".join(f"{t} %" for t in courtesy),
        "next": context["request"].path,
        "csrf_token": context.get("csrf_token"),
        "essential_from": ESSENTIAL_FROM_PERCENT,
    }
