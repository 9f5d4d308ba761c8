"""The emulated platform account itself (`GET /v1/account`).

dj-stripe reads it once per API key, on the first object it syncs, to know which Stripe account
owns what it stores (`djstripe_owner_account`); without it every dj-stripe sync fails with a 404.
The id is fixed so it survives `reset()`, as a real account's id does.
"""

from __future__ import annotations

from ..params import validate
from ..router import route
from ..state import State

ACCOUNT_ID = "acct_1MeterdeskEmulator"


@route("GET", "/v1/account")
def account_retrieve(state: State, params: dict) -> dict:
    validate(params, {})
    return {
        "id": ACCOUNT_ID,
        "object": "account",
        "business_profile": {
            "mcc": None,
            "name": "Meterdesk (emulated)",
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "US",
        "created": 1700000000,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "billing@meterdesk.local",
        "payouts_enabled": True,
        "settings": {
            "branding": {
                "icon": None,
                "logo": None,
                "primary_color": None,
                "secondary_color": None,
            },
            "dashboard": {"display_name": "Meterdesk (emulated)", "timezone": "Etc/UTC"},
        },
        "type": "standard",
    }
