import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# No persistent database connections under ASGI (config/settings.py says why), unless set.
os.environ.setdefault("DB_CONN_MAX_AGE", "0")

django_application = get_asgi_application()

# Imported once Django is set up (get_asgi_application ran django.setup()).
from gateway.asgi import GatewayFront  # noqa: E402

# The gateway's routes are answered in front of Django's handler (gateway/asgi.py says why);
# everything else is Django's.
application = GatewayFront(django_application)
