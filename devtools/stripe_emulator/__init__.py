"""A small stateful Stripe emulator for Meterdesk's tests and offline demo (see README.md)."""

from .emulator import Emulator
from .store import API_VERSION
from .webhooks import sign

__all__ = ["API_VERSION", "Emulator", "sign"]
