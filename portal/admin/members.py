"""Organisations' people in the admin: the members under each account (read-only), the page where
an operator adds a member, changes a role or removes one, and the read-only lists of every
membership and invitation.

Every change goes through ``portal.organisations`` with the operator as ``actor`` and no
``actor_membership`` (an operator is not a member, and may touch owners), so it is audited and
keeps the organisation's rules: an organisation always keeps an owner, and the primary owner
moves on when they stop being one. Each change needs Django's own permission on memberships
(``portal.add_membership``, ``change_membership``, ``delete_membership``); seeing the page needs
only the view permission on accounts.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from portal.admin.read_only import ReadOnlyAdmin, ReadOnlyInline
from portal.models import Account, Invitation, Membership, Role
from portal.organisations import (
    MembershipError,
    membership_add,
    membership_remove,
    membership_role_change,
)
from portal.principal import request_actor

REASON_HELP = "Kept in the audit log with the change."


def _reason_field() -> forms.CharField:
    return forms.CharField(
        label="Reason", help_text=REASON_HELP, widget=forms.TextInput(attrs={"size": 50})
    )


class MemberAddForm(forms.Form):
    email = forms.EmailField(
        label="Email", help_text="A user who has signed up; invite anyone else from the portal."
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.DEVELOPER)
    reason = _reason_field()

    def clean_email(self) -> User:
        email = self.cleaned_data["email"]
        users = list(User.objects.filter(email__iexact=email)[:2])
        if not users:
            raise forms.ValidationError(f"No user has signed up with {email}.")
        if len(users) > 1:
            raise forms.ValidationError(
                f"Several users have {email}: add the member from the user's own page."
            )
        return users[0]


class MemberRoleForm(forms.Form):
    membership = forms.IntegerField(widget=forms.HiddenInput)
    role = forms.ChoiceField(choices=Role.choices)
    reason = _reason_field()


class MemberRemoveForm(forms.Form):
    membership = forms.IntegerField(widget=forms.HiddenInput)
    reason = _reason_field()


# The page's three forms: which one a POST is (its ``operation``), the form, and the permission.
OPERATIONS: dict[str, tuple[type[forms.Form], str]] = {
    "add": (MemberAddForm, "portal.add_membership"),
    "role": (MemberRoleForm, "portal.change_membership"),
    "remove": (MemberRemoveForm, "portal.delete_membership"),
}


def _auto_id(operation: str) -> str | bool:
    # The role and remove forms repeat on every member's row: the template names their fields'
    # ids by member, so the form gives none (ids must be unique on the page).
    return "id_%s" if operation == "add" else False


def members_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str
) -> HttpResponse:
    """One organisation's members, with a form for each change the operator may make."""
    account = model_admin.get_object(request, object_id)
    if account is None or not model_admin.has_view_permission(request, account):
        raise PermissionDenied
    allowed = {name for name, (_, perm) in OPERATIONS.items() if request.user.has_perm(perm)}
    # A form the operator sent that was refused: shown again, bound, with why.
    failed: forms.Form | None = None
    operation = ""
    if request.method == "POST":
        operation = request.POST.get("operation", "")
        if operation not in OPERATIONS:
            return HttpResponse("Unknown operation.", status=400)
        if operation not in allowed:
            raise PermissionDenied
        form_class, _ = OPERATIONS[operation]
        form = form_class(request.POST, prefix=operation, auto_id=_auto_id(operation))
        if form.is_valid() and _apply(model_admin, request, account, operation, form):
            return HttpResponseRedirect(request.path)
        failed = form

    def shown(name: str, form_class: type[forms.Form], initial: dict[str, Any]) -> forms.Form:
        """The form of ``name`` for one member (or the add form): the refused one if it is
        this one, else a fresh one."""
        member = initial.get("membership")
        if failed is None or operation != name:
            return form_class(prefix=name, initial=initial, auto_id=_auto_id(name))
        if member is None or failed.data.get(f"{name}-membership") == str(member):
            return failed
        return form_class(prefix=name, initial=initial, auto_id=_auto_id(name))

    rows = [
        {
            "membership": membership,
            "role_form": shown(
                "role", MemberRoleForm, {"membership": membership.pk, "role": membership.role}
            ),
            "remove_form": shown("remove", MemberRemoveForm, {"membership": membership.pk}),
        }
        for membership in account.memberships.select_related("user").order_by("created", "pk")
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "original": account,
        "title": f"Members of {account}",
        "rows": rows,
        "add_form": shown("add", MemberAddForm, {"role": Role.DEVELOPER}),
        "allowed": allowed,
        "invitations": account.invitations.select_related("invited_by").order_by("-created")[:20],
    }
    status = 400 if failed is not None else 200
    return TemplateResponse(request, "admin/portal/account/members.html", context, status=status)


def _apply(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    account: Account,
    operation: str,
    form: forms.Form,
) -> bool:
    """Make the change; True when it was made, False when the service refused it. The
    operator is told either way."""
    data = form.cleaned_data
    actor = request_actor(request)
    try:
        if operation == "add":
            user: User = data["email"]
            membership_add(
                account=account,
                user=user,
                role=Role(data["role"]),
                actor=actor,
                actor_membership=None,
                reason=data["reason"],
            )
            done = f"Added {user.email} to {account} as {Role(data['role']).label.lower()}."
        else:
            membership = account.memberships.select_related("user").filter(pk=data["membership"])
            found = membership.first()
            if found is None:
                raise MembershipError(f"That person is not a member of {account}.")
            if operation == "role":
                membership_role_change(
                    membership=found,
                    role=Role(data["role"]),
                    actor=actor,
                    actor_membership=None,
                    reason=data["reason"],
                )
                done = f"{found.user.email} is now {Role(data['role']).label.lower()} of {account}."
            else:
                membership_remove(
                    membership=found, actor=actor, actor_membership=None, reason=data["reason"]
                )
                done = f"Removed {found.user.email} from {account}."
    except MembershipError as error:
        model_admin.message_user(request, str(error), messages.ERROR)
        return False
    model_admin.message_user(request, done, messages.SUCCESS)
    return True


class MembershipInline(ReadOnlyInline):
    """The organisation's members under its account; changed on the members page."""

    model = Membership
    fields = ("member", "role", "alerted", "joined")
    readonly_fields = fields
    ordering = ["created", "pk"]
    verbose_name_plural = "members (add, re-role or remove them on the members page)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user")

    @admin.display(description="Member")
    def member(self, membership: Membership) -> str:
        url = reverse("admin:auth_user_change", args=[membership.user_id])
        return format_html('<a href="{}">{}</a>', url, membership.user.email)

    @admin.display(description="Gets alerts", boolean=True)
    def alerted(self, membership: Membership) -> bool:
        return membership.alerted

    @admin.display(description="Joined (UTC)")
    def joined(self, membership: Membership) -> str:
        return f"{membership.created:%Y-%m-%d %H:%M}"


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    """Every membership, by organisation and role; changed on an account's members page."""

    list_display = ["member", "organisation", "role", "receives_alerts", "created"]
    list_filter = ["role", "receives_alerts"]
    search_fields = ["user__email", "account__name", "account__owner__email"]
    search_help_text = "Member's email, organisation name or its owner's email."
    list_select_related = ["user", "account__owner"]
    ordering = ["-created"]
    fields = ("account", "user", "role", "receives_alerts", "created")
    readonly_fields = fields

    @admin.display(description="Member", ordering="user__email")
    def member(self, membership: Membership) -> str:
        return membership.user.email

    @admin.display(description="Organisation", ordering="account__name")
    def organisation(self, membership: Membership) -> str:
        url = reverse("admin:portal_account_members", args=[membership.account_id])
        return format_html('<a href="{}">{}</a>', url, membership.account)


class InvitationStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("open", "Open"),
            ("accepted", "Accepted"),
            ("revoked", "Revoked"),
            ("expired", "Expired"),
        ]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Invitation]
    ) -> QuerySet[Invitation]:
        now = timezone.now()
        pending = queryset.filter(accepted_at=None, revoked_at=None)
        if self.value() == "open":
            return pending.filter(expires_at__gt=now)
        if self.value() == "accepted":
            return queryset.exclude(accepted_at=None)
        if self.value() == "revoked":
            return queryset.filter(accepted_at=None).exclude(revoked_at=None)
        if self.value() == "expired":
            return pending.filter(expires_at__lte=now)
        return queryset


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    """Every invitation, by role and status. The token's hash is never shown: it is of no use
    to an operator, and the link itself exists only in the email."""

    list_display = ["email", "account", "role", "status", "invited_by", "created", "expires_at"]
    list_filter = ["role", InvitationStatusFilter]
    search_fields = ["email", "account__name", "account__owner__email"]
    search_help_text = "Invited email, organisation name or its owner's email."
    list_select_related = ["account__owner", "invited_by"]
    ordering = ["-created"]
    fields = (
        "account",
        "email",
        "role",
        "status",
        "invited_by",
        "created",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    )
    readonly_fields = fields
