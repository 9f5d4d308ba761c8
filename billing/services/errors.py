"""The error billing's services raise for what cannot be done."""


class BillingError(Exception):
    """A billing action that cannot be done; the message is safe to show to the developer."""
