"""allauth's second-factor code forms, with a limit on the codes one user may try.

allauth counts wrong codes under its "login_failed" rate limit (allauth/mfa/base/internal/
flows.py, ``check_rate_limit``), which ``ACCOUNT_RATE_LIMITS`` turns off because django-ratelimit
limits the login page instead (config/urls.py). Without a limit here a six-digit code could be
guessed by whoever has the password. These forms, named in ``MFA_FORMS`` (allauth's documented
hook: https://docs.allauth.org/en/latest/mfa/configuration.html), count every code posted for a
user, authenticator or recovery code, at sign-in and at re-authentication, and past
``SECOND_FACTOR_RATE`` answer as the login does: django-ratelimit's ``Ratelimited``, which its
middleware turns into the 429 page (``RATELIMIT_VIEW``), whatever code was posted.
"""

from allauth.core import context
from allauth.mfa.base import forms as allauth_forms
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django_ratelimit.core import is_ratelimited
from django_ratelimit.exceptions import Ratelimited


def second_factor_attempt_count(*, user: AbstractBaseUser) -> None:
    """Count one code tried for ``user``; raise ``Ratelimited`` past ``SECOND_FACTOR_RATE``.

    Keyed by the user, not the client address: the guesser already has the password and may
    post from anywhere (django-ratelimit's core API: https://django-ratelimit.readthedocs.io/en/
    stable/usage.html#core-methods)."""
    if is_ratelimited(
        context.request,
        group="second-factor",
        key=lambda group, request: str(user.pk),
        rate=settings.SECOND_FACTOR_RATE,
        increment=True,
    ):
        raise Ratelimited()


class AuthenticateForm(allauth_forms.AuthenticateForm):
    def clean_code(self) -> str:
        second_factor_attempt_count(user=self.user)
        return super().clean_code()


class ReauthenticateForm(allauth_forms.ReauthenticateForm):
    def clean_code(self) -> str:
        second_factor_attempt_count(user=self.user)
        return super().clean_code()
