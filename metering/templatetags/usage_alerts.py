"""The usage alert banner and the alert email setting, for the dashboard and the usage page."""

from django import template

from metering.alerts import ESSENTIAL_FROM_PERCENT, alert_thresholds, usage_standing
from metering.forms import AlertSettingsForm
from portal.models import Account

register = template.Library()


@register.inclusion_tag("metering/_usage_alert_banner.html")
def usage_alert_banner(account: Account) -> dict:
    """Where the period's usage stands now, once it crossed an alert threshold or calls are
    refused: read at render time, whether or not the alert job has run since."""
    standing = usage_standing(account)
    return {
        "account": account,
        "standing": standing,
        "shown": standing.threshold is not None or standing.refused,
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
