"""How long ago something happened, in words, for the times the portal knows to about a minute
(a key's last use is written about once a minute)."""

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()

# Below this, Django's timesince says "0 minutes": a figure no one says aloud.
JUST_NOW = timedelta(minutes=1)


@register.filter
def time_ago(moment: datetime | None, now: datetime | None = None) -> str:
    """ "just now" under a minute, else "3 minutes ago", "2 days, 4 hours ago"; "" for no time.
    A moment a little ahead of this clock (written by another process) is "just now" too."""
    if moment is None:
        return ""
    now = now or timezone.now()
    if now - moment < JUST_NOW:
        return "just now"
    return f"{timesince(moment, now)} ago"
