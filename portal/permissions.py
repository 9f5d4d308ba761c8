"""What each role in an organisation may do: one table, read by every view and service.

A view asks ``membership.allows(Action.KEY_CREATE)`` (or ``organisation_for(request, action)``
in portal.organisation_access, which answers 403 or 404 for it); nothing anywhere compares a
role by name. Changing who may do what is an edit to ``ROLE_ACTIONS`` and to the table in
docs/teams.md, which tests/portal/test_permissions.py holds to it.

Two rules are about the people involved rather than the role, and live in the services that
need them (portal.organisations): only an owner may make, unmake or remove an owner, and an
organisation always keeps at least one owner.
"""

from enum import StrEnum

from portal.models import Role


class Action(StrEnum):
    # Every member.
    ORGANISATION_VIEW = "organisation.view"
    MEMBERS_VIEW = "members.view"
    # Keys: a developer sees and revokes the keys they made; an admin every key.
    KEYS_VIEW_OWN = "keys.view_own"
    KEYS_VIEW_ALL = "keys.view_all"
    KEY_CREATE = "keys.create"
    KEY_REVOKE_OWN = "keys.revoke_own"
    KEY_REVOKE_ANY = "keys.revoke_any"
    USAGE_VIEW = "usage.view"
    # Money.
    TIER_CHANGE = "billing.tier_change"
    INVOICES_VIEW = "billing.invoices_view"
    BUDGET_MANAGE = "billing.budget_manage"
    ALERTS_MANAGE = "alerts.manage"
    # People.
    MEMBER_INVITE = "members.invite"
    MEMBER_REMOVE = "members.remove"
    MEMBER_ROLE_CHANGE = "members.role_change"
    # The organisation itself.
    ORGANISATION_RENAME = "organisation.rename"
    OWNERSHIP_TRANSFER = "organisation.transfer"
    ORGANISATION_DELETE = "organisation.delete"
    # Download everything the organisation holds (usage, invoices, the organisation): its
    # whole record, so the owner's, like deleting it.
    ORGANISATION_EXPORT = "organisation.export"


_EVERY_MEMBER = frozenset({Action.ORGANISATION_VIEW, Action.MEMBERS_VIEW})
_OWN_KEYS = frozenset({Action.KEYS_VIEW_OWN, Action.KEY_CREATE, Action.KEY_REVOKE_OWN})
_ALL_KEYS = _OWN_KEYS | {Action.KEYS_VIEW_ALL, Action.KEY_REVOKE_ANY}
_MONEY = frozenset(
    {Action.TIER_CHANGE, Action.INVOICES_VIEW, Action.BUDGET_MANAGE, Action.ALERTS_MANAGE}
)
_PEOPLE = frozenset({Action.MEMBER_INVITE, Action.MEMBER_REMOVE, Action.MEMBER_ROLE_CHANGE})

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.ADMIN: _EVERY_MEMBER
    | _ALL_KEYS
    | _PEOPLE
    | {Action.USAGE_VIEW, Action.ORGANISATION_RENAME},
    Role.DEVELOPER: _EVERY_MEMBER | _OWN_KEYS | {Action.USAGE_VIEW},
    # Usage too: it is what the invoices bill.
    Role.BILLING: _EVERY_MEMBER | _MONEY | {Action.USAGE_VIEW},
}


def role_allows(role: Role, action: Action) -> bool:
    return action in ROLE_ACTIONS[role]


def roles_allowing(action: Action) -> list[Role]:
    """The roles that may do ``action``, in the roles' order (what a refusal page names)."""
    return [role for role in Role if role_allows(role, action)]
