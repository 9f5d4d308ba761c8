"""The gateway's proxy (gateway.proxy) as a Django view, for the routes Django serves itself:
under WSGI (``make run``, the test client) and for any ASGI deployment that does not put
``gateway.asgi.GatewayFront`` in front (production's config/asgi.py does, and answers the
gateway's routes before Django's handler sees them)."""

from collections.abc import AsyncIterator
from urllib.parse import quote

from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway.proxy import BODY_CHUNK_BYTES, ProxyRequest, ProxyResponse, proxy_call
from portal.api.views import unknown_endpoint


@csrf_exempt
async def proxy(request: HttpRequest, path: str = "") -> HttpResponseBase:
    size = _body_size(request)
    call = ProxyRequest(
        method=request.method or "GET",
        raw_path=_raw_path(request),
        path=request.path,
        query=request.META.get("QUERY_STRING", ""),
        headers=_headers(request),
        # Django's handler has read the whole body already: its size is known exactly.
        content_length=size if size else None,
        body=_body_chunks(request) if size else None,
        peer=request.META.get("REMOTE_ADDR") or "",
        scheme=request.scheme or "http",
    )
    answer = await proxy_call(call)
    if answer is None:
        # The API's own 404 for a path nothing answers (the built-in routes came first).
        return unknown_endpoint(request, path)
    return _django_response(answer)


def _raw_path(request: HttpRequest) -> str:
    """The path as the client sent it, still percent-encoded: Django decodes ``request.path``
    (``%2F`` becomes ``/``), which would hide an encoded slash. ASGI servers pass the raw bytes
    as ``raw_path`` (optional in the ASGI spec); under WSGI it is re-encoded."""
    scope = getattr(request, "scope", None) or {}
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if raw else quote(request.path, safe="/:@!$&'()*+,;=-._~")


def _headers(request: HttpRequest) -> list[tuple[str, str]]:
    scope = getattr(request, "scope", None)
    if scope and "headers" in scope:
        return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
    return [(name.lower(), value) for name, value in request.headers.items()]


def _body_size(request: HttpRequest) -> int:
    """The body's size in bytes: off the file Django's ASGI handler read it into (memory, or a
    temporary file past FILE_UPLOAD_MAX_MEMORY_SIZE); under WSGI, where the body is still a
    stream from the socket, its Content-Length."""
    stream = request._stream
    body_file = getattr(stream, "stream", stream)
    seekable = getattr(body_file, "seekable", None)
    if seekable is not None and seekable():
        position = body_file.tell()
        body_file.seek(0, 2)
        size = body_file.tell()
        body_file.seek(position)
        return size
    return int(request.META.get("CONTENT_LENGTH") or 0)


async def _body_chunks(request: HttpRequest) -> AsyncIterator[bytes]:
    while chunk := request.read(BODY_CHUNK_BYTES):
        yield chunk


def _django_response(answer: ProxyResponse) -> HttpResponseBase:
    response: HttpResponseBase
    if isinstance(answer.body, bytes):
        response = HttpResponse(answer.body, status=answer.status)
    else:
        response = StreamingHttpResponse(answer.body, status=answer.status)
    # The upstream's type or none: not Django's default text/html.
    del response["Content-Type"]
    for name, value in answer.headers:
        lowered = name.lower()
        if lowered == "set-cookie":
            # Django keeps cookies apart from headers; each Set-Cookie goes through as sent.
            response.cookies.load(value)
        elif lowered in response.headers:
            response[name] = f"{response[name]}, {value}"
        else:
            response[name] = value
    return response
