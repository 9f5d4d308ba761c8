import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# No persistent database connections under ASGI (config/settings.py says why), unless set.
os.environ.setdefault("DB_CONN_MAX_AGE", "0")

application = get_asgi_application()
