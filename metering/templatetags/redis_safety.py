"""The admin index's warning when the metering Redis would lose billing data (templates/admin/
index.html): the same findings as ``/healthz`` and ``manage.py check --deploy``, in words."""

from typing import Any

from django import template
from django.conf import settings

from metering.selectors import metering_redis_safety

register = template.Library()


@register.inclusion_tag("metering/_redis_safety_banner.html", takes_context=True)
def metering_redis_banner(context: template.Context) -> dict[str, Any]:
    """Nothing for someone who is not staff, in the embedded mode, or when Redis is safe."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if not (getattr(user, "is_staff", False) and settings.METERING_REDIS_URL):
        return {"safety": None}
    return {"safety": metering_redis_safety()}
