"""The key the docs show (``portal.keys.examples``), for templates outside the portal's views:
the Swagger UI page, which drf-spectacular renders."""

from django import template
from django.contrib.auth import get_user

from portal.keys.examples import KeyExample, key_example_for

register = template.Library()


@register.simple_tag(takes_context=True)
def key_example(context: template.Context) -> KeyExample:
    request = context.get("request")
    if request is None:
        return key_example_for(None)
    # drf-spectacular renders Swagger UI through DRF, whose authentication is the API's (keys,
    # not sessions) and which overwrites Django's request.user with its own anonymous one; the
    # browser's signed-in developer is read from the session itself.
    return key_example_for(get_user(getattr(request, "_request", request)))
