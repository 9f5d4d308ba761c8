"""The operators' admin. Django's autodiscover imports this package; importing each module
registers its model admins."""

from django.contrib import admin

from portal.admin import accounts, api_keys, audit, authenticators, members  # noqa: F401

admin.site.site_header = "Meterdesk operations"
admin.site.site_title = "Meterdesk operations"
admin.site.index_title = "Accounts, keys, usage and billing"
