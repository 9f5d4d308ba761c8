"""The Content-Security-Policy header: django-csp's middleware, told what is particular here.

The policy itself is ``CONTENT_SECURITY_POLICY`` in the settings (django-csp 4's format,
https://django-csp.readthedocs.io/en/latest/configuration.html). This subclass extends it at the
hook django-csp documents for that (``get_policy_parts``, "Can be customised by subclassing"):

- every page's header carries a fresh nonce, so a template may add ``<script nonce=...>``
  without the header changing shape from page to page (django-csp adds the nonce only once a
  template has read ``request.csp_nonce``);
- ``form-action`` also names Stripe's hosted pages: the pricing and billing pages' forms post to
  our checkout and portal views, which answer with a 303 to Stripe Checkout or the customer
  portal, and Chromium checks a redirect after a form submission against the submitting page's
  form-action (MDN, "CSP: form-action": "Chrome 63 does" block such redirects);
- dj-stripe's admin pages (its change form and action confirmation templates carry ``<style>``
  blocks and ``style=`` attributes of their own) let inline styles through; script-src stays
  as strict there as everywhere (their inline spinner handlers stay blocked, and the pages work
  without them). Staff-only pages, and a style runs no script;
- the API under ``EXCLUDE_URL_PREFIXES`` (``/v1/``) gets no header and no policy is built for
  it: its answers are JSON, and django-csp would build the policy string on every call before
  dropping it for an excluded path.
"""

from urllib.parse import urlsplit

from csp.constants import SELF, UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase


def stripe_form_action_origins() -> list[str]:
    """The origins a form on our pages may end up at: Stripe's hosted pages (Checkout, the
    customer portal; ``STRIPE_HOSTED_PAGE_ORIGINS``) and, when the portal talks to a stand-in
    (``STRIPE_API_BASE``: the bundled emulator, which serves those pages itself), its origin.
    Read on every response, so a test that points ``STRIPE_API_BASE`` at an emulator on a free
    port gets that port."""
    origins = list(settings.STRIPE_HOSTED_PAGE_ORIGINS)
    if settings.STRIPE_API_BASE:
        base = urlsplit(settings.STRIPE_API_BASE)
        origins.append(f"{base.scheme}://{base.netloc}")
    return origins


def _is_djstripe_admin_page(request: HttpRequest) -> bool:
    # dj-stripe names its admin URLs (changelists, change forms, its custom actions) after its
    # app label, whatever the admin is mounted at.
    match = request.resolver_match
    return (
        match is not None
        and "admin" in match.namespaces
        and (match.url_name or "").startswith("djstripe_")
    )


def _is_excluded(request: HttpRequest) -> bool:
    prefixes = settings.CONTENT_SECURITY_POLICY.get("EXCLUDE_URL_PREFIXES") or ()
    return request.path_info.startswith(tuple(prefixes))


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if not _is_excluded(request):
            super().process_request(request)

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if _is_excluded(request):
            return response
        return super().process_response(request, response)

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if report_only:
            return parts
        # Reading the lazy nonce makes it; django-csp then puts it in the header.
        parts.nonce = str(request.csp_nonce)  # type: ignore[attr-defined]
        update = dict(parts.update or {})
        update["form-action"] = [*update.get("form-action", ()), *stripe_form_action_origins()]
        parts.update = update
        if _is_djstripe_admin_page(request):
            parts.replace = {**(parts.replace or {}), "style-src": [SELF, UNSAFE_INLINE]}
        return parts
