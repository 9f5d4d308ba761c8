"""Who may call an endpoint: an active account whose tier includes the endpoint's scope."""

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from portal.api.authentication import ApiKeyMissing
from portal.api.problems import upgrade_url
from portal.principal import ApiPrincipal
from portal.selectors import tier_names_allowing


class ScopeNotAllowed(exceptions.PermissionDenied):
    problem_type = "scope-not-allowed"

    def __init__(self, *, scope: str, tier_name: str, allowed_tiers: list[str]):
        detail = f"The {tier_name} tier does not include this endpoint."
        extra: dict[str, object] = {"scope": scope, "allowed_tiers": allowed_tiers}
        if allowed_tiers:
            # Only a tier someone can move to is worth an upgrade link.
            detail = (
                f"The {tier_name} tier does not include this endpoint; it is available on "
                f"{', '.join(allowed_tiers)}. Upgrade your tier to call it: see upgrade_url."
            )
            extra["upgrade_url"] = upgrade_url()
        super().__init__(detail)
        self.problem_extra = extra


class AccountSuspended(exceptions.PermissionDenied):
    problem_type = "account-suspended"

    def __init__(self, *, reason: str):
        super().__init__("This account is suspended; API calls are refused until it is reinstated.")
        self.problem_extra = {"reason": reason}


class TierScopePermission(BasePermission):
    """A key of an active account whose tier includes the view's scope. Decided from the cached
    principal (no SQL), except that a refusal looks up which tiers would be allowed."""

    def has_permission(self, request, view) -> bool:
        principal = request.auth
        if not isinstance(principal, ApiPrincipal):
            raise ApiKeyMissing()
        if not principal.account_active:
            raise AccountSuspended(reason=principal.suspended_reason)
        scope = getattr(view, "scope", "")
        if scope and not principal.allows(scope):
            raise ScopeNotAllowed(
                scope=scope,
                tier_name=principal.tier_name,
                allowed_tiers=tier_names_allowing(scope),
            )
        return True
