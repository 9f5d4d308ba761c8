"""WhiteNoise's and django-ratelimit's middleware, able to run on the event loop under ASGI.

Django runs a middleware that is not ``async_capable`` in a thread: under ASGI each request
then hops from the event loop to a thread at that middleware and back to the loop for the
layers inside it (``sync_to_async`` / ``async_to_sync``), twice with these two. For the
gateway's async proxy (gateway/views.py) those hops were most of Meterdesk's own time per
call (19 ms a call before, measured on the loaded CI box; docs/gateway.md). These subclasses
change nothing else: WhiteNoise serves the same files (in a thread, as it reads them with
blocking I/O), django-ratelimit's ``process_exception`` still answers the login and signup
views' ``Ratelimited``. Under WSGI both behave as the originals.
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings as django_settings
from django.utils.deprecation import MiddlewareMixin
from django_ratelimit import middleware as ratelimit_middleware

# WhiteNoise ships no type information (no py.typed, no stubs).
from whitenoise import middleware as whitenoise_middleware  # type: ignore[import-untyped]


class WhiteNoiseMiddleware(whitenoise_middleware.WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, settings=django_settings):
        super().__init__(get_response, settings)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            # Tells Django's handler that calling this instance returns a coroutine.
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)


class RatelimitMiddleware(MiddlewareMixin):
    """Passes every request on (MiddlewareMixin's ``__call__``, sync or async) with
    django-ratelimit's own ``process_exception``."""

    process_exception = ratelimit_middleware.RatelimitMiddleware.process_exception
