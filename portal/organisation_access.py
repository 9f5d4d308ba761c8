"""Which organisation a page request acts for, and whether its member may: the one place every
organisation-scoped view asks.

The organisation is the one the member last switched to (kept in the session), else the first
they joined. Membership is read on every request, never cached: someone removed from an
organisation (or who left it) is refused from their next request, and a role change holds at
once. That is one indexed query per page; the API does not come here (its principal already
carries the organisation, from the key).
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from portal.models import Membership
from portal.permissions import Action
from portal.principal import AuthenticatedHttpRequest
from portal.selectors import membership_list, membership_of
from portal.services import account_ensure

# The session key holding the id of the organisation the member is looking at.
SESSION_KEY = "organisation_id"


class RoleRefused(PermissionDenied):
    """The member's role does not allow the action: the page answers 403 and names the roles
    that may (templates/403.html)."""

    def __init__(self, membership: Membership, action: Action):
        super().__init__(f"Your role in {membership.account} does not allow this.")
        self.membership = membership
        self.action = action


def membership_current(request: AuthenticatedHttpRequest) -> Membership:
    """The signed-in user's membership of the organisation this request acts for (organisation
    and tier loaded). A user who belongs to none (left their only organisation; an operator
    made with ``createsuperuser``) gets a personal one, as at signup."""
    cached: Membership | None = getattr(request, "_membership", None)
    if cached is not None:
        return cached
    membership = None
    chosen = request.session.get(SESSION_KEY)
    if isinstance(chosen, int):
        membership = membership_of(user=request.user, account_id=chosen)
    if membership is None:
        membership = membership_list(user=request.user).first()
    if membership is None:
        account = account_ensure(owner=request.user)
        membership = membership_of(user=request.user, account_id=account.pk)
        assert membership is not None  # account_ensure made the user its owner
    request._membership = membership  # type: ignore[attr-defined]
    return membership


def organisation_for(request: AuthenticatedHttpRequest, action: Action) -> Membership:
    """The current membership, if its role allows ``action``; ``RoleRefused`` (403) if not."""
    membership = membership_current(request)
    if not membership.allows(action):
        raise RoleRefused(membership, action)
    return membership


def organisation_switch(request: AuthenticatedHttpRequest, account_id: int) -> Membership:
    """Make organisation ``account_id`` the one this session acts for. A user who is not its
    member gets 404: whether an organisation exists is not theirs to learn."""
    membership = membership_of(user=request.user, account_id=account_id)
    if membership is None:
        raise Http404("No such organisation.")
    request.session[SESSION_KEY] = membership.account_id
    request._membership = membership  # type: ignore[attr-defined]
    return membership


def membership_current_or_none(request: HttpRequest) -> Membership | None:
    """For pages open to everyone (pricing, the quickstart): the current membership of a
    signed-in visitor, None for an anonymous one."""
    if not request.user.is_authenticated:
        return None
    return membership_current(request)  # type: ignore[arg-type]
