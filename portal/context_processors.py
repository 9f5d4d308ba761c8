from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from portal.models import Account, Membership
from portal.organisation_access import membership_current_or_none
from portal.permissions import Action
from portal.selectors import membership_list


def portal(request: HttpRequest) -> dict:
    """The layout's view of the signed-in member: the organisation the request acts for
    (``current_account``: navigation, tier badge, banners), their membership
    (``current_membership``) and ``can``, what their role allows by Action name
    (``{% if can.KEYS_VIEW_OWN %}``), all False for a visitor.

    Lazy: read only when a template uses them, so a page that never shows the layout (the
    admin, a JSON answer) asks nothing; a page whose view already resolved the membership
    (``organisation_for``) reuses it, no query added.
    """

    def membership() -> Membership | None:
        if getattr(request, "user", None) is None:
            return None
        return membership_current_or_none(request)

    # membership_current keeps what it found on the request: asking again is free.
    def account() -> Account | None:
        current = membership()
        return None if current is None else current.account

    def can() -> dict[str, bool]:
        current = membership()
        return {action.name: current is not None and current.allows(action) for action in Action}

    return {
        "current_membership": SimpleLazyObject(membership),
        "current_account": SimpleLazyObject(account),
        "can": SimpleLazyObject(can),
        "site_url": settings.SITE_URL,
    }


def organisations(request: HttpRequest) -> dict:
    """``organisations``: the signed-in user's memberships, for the navigation's organisation
    switcher (empty for a visitor). Lazy, like ``portal``'s: one query, on pages that show it."""

    def memberships() -> list[Membership]:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return []
        return list(membership_list(user=user))

    return {"organisations": SimpleLazyObject(memberships)}
