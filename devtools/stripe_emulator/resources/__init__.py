"""API resources. Importing this package registers every route."""

from . import (  # noqa: F401
    account,
    catalog,
    checkout,
    customers,
    events,
    invoices,
    meters,
    portal,
    subscriptions,
    v2,
)
