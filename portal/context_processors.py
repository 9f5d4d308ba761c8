from django.conf import settings
from django.http import HttpRequest


def portal(request: HttpRequest) -> dict:
    """The signed-in developer's account for the layout (navigation, tier badge, banners)."""
    account = None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        account = getattr(user, "account", None) if hasattr(user, "account") else None
    return {"current_account": account, "site_url": settings.SITE_URL}
