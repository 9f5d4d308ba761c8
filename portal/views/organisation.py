"""The organisation's pages: its settings (rename, make a new one), its members (invite,
re-role, remove, leave, hand over ownership, one's own alert emails), accepting an invitation,
and switching between one's organisations.

Every page acts for the session's organisation (portal.organisation_access), and asks it
whether the member's role allows the action (``organisation_for``: 403 if not). A member or
invitation id in a URL is looked up in that organisation only, so another organisation's id
answers 404, whoever asks. The rules about the people involved (only an owner touches an
owner, one owner always kept) are the services' (portal.organisations): refused there, the
page says why with 403 (an owner's business) or 409 (the organisation as it stands).
"""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.forms import (
    InvitationCreateForm,
    MembershipAlertsForm,
    MembershipRoleForm,
    OrganisationNameForm,
)
from portal.models import Invitation, Membership, Role
from portal.organisation_access import (
    SESSION_KEY,
    membership_current,
    organisation_for,
    organisation_switch,
)
from portal.organisations import (
    INVITATION_VALID_FOR,
    InvitationClosed,
    InvitationForAnotherAddress,
    InvitationUnknown,
    MembershipError,
    OwnerOnly,
    invitation_accept,
    invitation_check,
    invitation_closed_reason,
    invitation_create,
    invitation_revoke,
    member_manageable,
    membership_alerts_set,
    membership_remove,
    membership_role_change,
    organisation_create,
    ownership_transfer,
    roles_assignable,
)
from portal.permissions import Action
from portal.principal import AuthenticatedHttpRequest
from portal.selectors import (
    invitation_for_token,
    invitation_in,
    invitation_list_open,
    member_rows,
    membership_in,
)
from portal.services import account_rename


def _refusal_status(error: MembershipError) -> int:
    """403 for a change only an owner may make, 404 for a link that never worked, 410 for one
    that no longer does, 409 for what the organisation's state forbids."""
    if isinstance(error, OwnerOnly | InvitationForAnotherAddress):
        return 403
    if isinstance(error, InvitationUnknown):
        return 404
    if isinstance(error, InvitationClosed):
        return 410
    return 409


# --- Settings ------------------------------------------------------------------------------------


def _render_settings(
    request: AuthenticatedHttpRequest,
    membership: Membership,
    *,
    rename_form: OrganisationNameForm | None = None,
    create_form: OrganisationNameForm | None = None,
    status: int = 200,
) -> HttpResponse:
    account = membership.account
    context = {
        "membership": membership,
        "account": account,
        "can_rename": membership.allows(Action.ORGANISATION_RENAME),
        "rename_form": rename_form
        or OrganisationNameForm(prefix="rename", initial={"name": account.name}),
        "create_form": create_form or OrganisationNameForm(prefix="create"),
    }
    return render(request, "portal/organisation/settings.html", context, status=status)


@login_required
@never_cache
@require_GET
def organisation_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _render_settings(request, organisation_for(request, Action.ORGANISATION_VIEW))


@login_required
@require_POST
def organisation_rename(request: AuthenticatedHttpRequest) -> HttpResponse:
    membership = organisation_for(request, Action.ORGANISATION_RENAME)
    form = OrganisationNameForm(request.POST, prefix="rename")
    if not form.is_valid():
        return _render_settings(request, membership, rename_form=form, status=400)
    account_rename(account=membership.account, actor=request.user, name=form.cleaned_data["name"])
    messages.success(request, f"The organisation is now called {form.cleaned_data['name']}.")
    return redirect("portal:organisation")


@login_required
@require_POST
def organisation_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Anyone signed in may make an organisation; they become its owner and look at it."""
    form = OrganisationNameForm(request.POST, prefix="create")
    if not form.is_valid():
        return _render_settings(request, membership_current(request), create_form=form, status=400)
    account = organisation_create(owner=request.user, name=form.cleaned_data["name"])
    organisation_switch(request, account.pk)
    messages.success(
        request, f"{account} is made and you are its owner. Invite your team from Members."
    )
    return redirect("portal:members")


@login_required
@require_POST
def organisation_switch_view(request: AuthenticatedHttpRequest, account_id: int) -> HttpResponse:
    membership = organisation_switch(request, account_id)
    messages.info(
        request, f"You are now in {membership.account} as {membership.get_role_display()}."
    )
    return redirect("portal:dashboard")


# --- Members -------------------------------------------------------------------------------------


def _render_members(
    request: AuthenticatedHttpRequest,
    membership: Membership,
    *,
    invite_form: InvitationCreateForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    account = membership.account
    can_invite = membership.allows(Action.MEMBER_INVITE)
    rows = [
        {
            "membership": row.membership,
            "keys": row.keys,
            "is_you": row.membership.pk == membership.pk,
            "is_primary": row.membership.user_id == account.owner_id,
            "manageable": member_manageable(membership, row.membership),
        }
        for row in member_rows(account=account)
    ]
    context: dict[str, Any] = {
        "membership": membership,
        "account": account,
        "rows": rows,
        "roles": roles_assignable(membership),
        "can_invite": can_invite,
        "can_remove": membership.allows(Action.MEMBER_REMOVE),
        "can_role_change": membership.allows(Action.MEMBER_ROLE_CHANGE),
        "can_transfer": membership.allows(Action.OWNERSHIP_TRANSFER),
        "invitations": invitation_list_open(account=account) if can_invite else [],
        # Developer unless chosen: the role most invitations are for, and no power over people.
        "invite_form": invite_form or InvitationCreateForm(initial={"role": Role.DEVELOPER}),
        "valid_days": INVITATION_VALID_FOR.days,
        "error": error,
    }
    return render(request, "portal/organisation/members.html", context, status=status)


def _refused(
    request: AuthenticatedHttpRequest, membership: Membership, error: MembershipError
) -> HttpResponse:
    return _render_members(request, membership, error=str(error), status=_refusal_status(error))


def _member(membership: Membership, membership_id: int) -> Membership:
    target = membership_in(account=membership.account, membership_id=membership_id)
    if target is None:
        raise Http404("No such member.")
    return target


def _invitation(membership: Membership, invitation_id: int) -> Invitation:
    invitation = invitation_in(account=membership.account, invitation_id=invitation_id)
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation


@login_required
@never_cache
@require_GET
def members(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _render_members(request, organisation_for(request, Action.MEMBERS_VIEW))


@login_required
@require_POST
def invitation_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    membership = organisation_for(request, Action.MEMBER_INVITE)
    form = InvitationCreateForm(request.POST)
    if not form.is_valid():
        return _render_members(request, membership, invite_form=form, status=400)
    email = form.cleaned_data["email"]
    try:
        invitation, _token = invitation_create(
            account=membership.account,
            email=email,
            role=form.cleaned_data["role"],
            actor=request.user,
            actor_membership=membership,
        )
    except MembershipError as exc:
        form.add_error(None, str(exc))
        return _render_members(request, membership, invite_form=form, status=_refusal_status(exc))
    messages.success(
        request,
        f"Invitation sent to {email} as {invitation.get_role_display()}. "
        f"Its link works once, for {INVITATION_VALID_FOR.days} days.",
    )
    return redirect("portal:members")


@login_required
@require_POST
def invitation_revoke_view(request: AuthenticatedHttpRequest, invitation_id: int) -> HttpResponse:
    membership = organisation_for(request, Action.MEMBER_INVITE)
    invitation = _invitation(membership, invitation_id)
    try:
        invitation_revoke(invitation=invitation, actor=request.user, actor_membership=membership)
    except MembershipError as exc:
        return _refused(request, membership, exc)
    messages.success(request, f"The invitation to {invitation.email} no longer works.")
    return redirect("portal:members")


@login_required
@require_POST
def membership_role_change_view(
    request: AuthenticatedHttpRequest, membership_id: int
) -> HttpResponse:
    membership = organisation_for(request, Action.MEMBER_ROLE_CHANGE)
    target = _member(membership, membership_id)
    form = MembershipRoleForm(request.POST)
    if not form.is_valid():
        return _render_members(request, membership, error="Choose a role.", status=400)
    try:
        changed = membership_role_change(
            membership=target,
            role=form.cleaned_data["role"],
            actor=request.user,
            actor_membership=membership,
        )
    except MembershipError as exc:
        return _refused(request, membership, exc)
    messages.success(request, f"{changed.user.email} is now {changed.get_role_display()}.")
    return redirect("portal:members")


@login_required
@require_POST
def membership_remove_view(request: AuthenticatedHttpRequest, membership_id: int) -> HttpResponse:
    membership = organisation_for(request, Action.MEMBER_REMOVE)
    target = _member(membership, membership_id)
    if target.pk == membership.pk:
        return leave(request)
    kept = membership.account.api_keys.usable().filter(created_by=target.user).count()
    try:
        membership_remove(membership=target, actor=request.user, actor_membership=membership)
    except MembershipError as exc:
        return _refused(request, membership, exc)
    keys = (
        f" The {kept} key{'s' if kept != 1 else ''} they made keep working: revoke "
        "them on the keys page if they should stop."
        if kept
        else ""
    )
    messages.success(request, f"{target.user.email} is no longer a member.{keys}")
    return redirect("portal:members")


@login_required
@require_POST
def leave(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Leave the session's organisation; the session then acts for another one (the first
    the user still belongs to, or a new personal one), from this very redirect on."""
    membership = organisation_for(request, Action.ORGANISATION_VIEW)
    try:
        membership_remove(membership=membership, actor=request.user, actor_membership=membership)
    except MembershipError as exc:
        return _refused(request, membership, exc)
    request.session.pop(SESSION_KEY, None)
    request._membership = None  # type: ignore[attr-defined]
    messages.success(request, f"You left {membership.account}.")
    return redirect("portal:dashboard")


@login_required
@require_POST
def ownership_transfer_view(request: AuthenticatedHttpRequest, membership_id: int) -> HttpResponse:
    membership = organisation_for(request, Action.OWNERSHIP_TRANSFER)
    target = _member(membership, membership_id)
    try:
        ownership_transfer(
            account=membership.account,
            to=target,
            actor=request.user,
            actor_membership=membership,
        )
    except MembershipError as exc:
        return _refused(request, membership, exc)
    messages.success(request, f"{target.user.email} now owns {membership.account}.")
    return redirect("portal:members")


@login_required
@require_POST
def membership_alerts(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The member's own choice of alert emails for the session's organisation."""
    membership = organisation_for(request, Action.ORGANISATION_VIEW)
    form = MembershipAlertsForm(request.POST)
    form.is_valid()  # a checkbox: absent or anything else is "no"
    receives = bool(form.cleaned_data.get("receives"))
    membership_alerts_set(membership=membership, receives=receives)
    messages.success(
        request,
        f"Usage and budget alerts of {membership.account} "
        f"{'will' if receives else 'will no longer'} be emailed to you.",
    )
    return redirect("portal:members")


# --- Accepting an invitation ---------------------------------------------------------------------


def _invitation_gone(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(
        request, "portal/organisation/invitation_closed.html", {"message": message}, status=status
    )


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    """The link of an invitation email. Anonymous: what the invitation is, and links to log in
    or sign up that come back here. Signed in: a button that joins."""
    invitation = invitation_for_token(token)
    if invitation is None:
        return _invitation_gone(
            request, "This invitation link is not valid: check it was copied whole.", 404
        )
    if not invitation.is_open():
        return _invitation_gone(request, invitation_closed_reason(invitation), 410)
    context: dict[str, Any] = {"invitation": invitation, "account": invitation.account}
    if not request.user.is_authenticated:
        return render(request, "portal/organisation/invitation.html", context)
    user = request.user
    assert not user.is_anonymous
    if request.method == "POST":
        try:
            joined = invitation_accept(token=token, user=user)
        except MembershipError as exc:
            context["error"] = str(exc)
            return render(
                request,
                "portal/organisation/invitation.html",
                context,
                status=_refusal_status(exc),
            )
        organisation_switch(request, joined.account_id)  # type: ignore[arg-type]
        messages.success(
            request, f"Welcome to {joined.account}: you joined as {joined.get_role_display()}."
        )
        return redirect("portal:dashboard")
    try:
        invitation_check(invitation=invitation, user=user)
    except MembershipError as exc:
        context["error"] = str(exc)
        return render(
            request, "portal/organisation/invitation.html", context, status=_refusal_status(exc)
        )
    return render(request, "portal/organisation/invitation.html", context)
