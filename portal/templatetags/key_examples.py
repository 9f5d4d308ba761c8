"""The key the docs show (``portal.keys.examples``), for templates outside the portal's views:
the Swagger UI page, which drf-spectacular renders."""

from django import template
from django.contrib.auth import get_user

from portal.keys.examples import KeyExample, key_example_for
from portal.organisation_access import SESSION_KEY
from portal.selectors import membership_list, membership_of

register = template.Library()


@register.simple_tag(takes_context=True)
def key_example(context: template.Context) -> KeyExample:
    request = context.get("request")
    if request is None:
        return key_example_for(None)
    # drf-spectacular renders Swagger UI through DRF, whose authentication is the API's (keys,
    # not sessions) and which overwrites Django's request.user with its own anonymous one; the
    # browser's signed-in member, and the organisation they act for, are read from the session
    # itself, as portal.organisation_access.membership_current reads them (without making a
    # personal organisation: a reference page has no business creating one).
    page_request = getattr(request, "_request", request)
    user = get_user(page_request)
    if not user.is_authenticated:
        return key_example_for(None)
    chosen = page_request.session.get(SESSION_KEY)
    membership = membership_of(user=user, account_id=chosen) if isinstance(chosen, int) else None
    return key_example_for(membership or membership_list(user=user).first())
