"""The HTTP layer: auth, form decoding, Idempotency-Key replay, fault injection, routing."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from . import control, pages, resources  # noqa: F401  (importing registers the routes)
from .errors import StripeError, not_found_path
from .forms import decode
from .router import Response, resolve
from .state import State

logger = logging.getLogger(__name__)


def _secret_key(header: str | None) -> str | None:
    """The key from `Bearer sk_...` or HTTP basic auth with the key as username."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value).decode().partition(":")[0]
        except ValueError:
            return None
    return None


def _auth_error(key: str | None) -> StripeError:
    if not key:
        message = (
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth "
            "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
        )
    else:
        message = f"Invalid API Key provided: {key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}"
    return StripeError(message, status=401, replayable=False)


class Handler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each response waits ~40 ms for
    # the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    # ----- pipeline ----------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        request_id = "req_" + secrets.token_hex(7)
        if path.startswith("/_emulator/"):
            status, body = control.dispatch(state, method, path, url.query, raw_body, self)
            return self._send_json(status, body, request_id)
        route, path_args, path_exists = resolve(method, path)
        if route is not None and not route.api:
            return self._run_page(state, route, path_args, url.query, raw_body)
        with state.store.lock:
            state.store.request_counts[f"{method} {path}"] += 1
        key = _secret_key(self.headers.get("Authorization"))
        if not key or not key.startswith("sk_test_"):
            return self._send_error(_auth_error(key), request_id)
        fault = state.faults.take(method, path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if not (fault.delay and fault.apply):
                return self._send_fault(fault, request_id)
        if route is None:
            error = not_found_path(method, path)
            if path_exists:
                error.message = f"Unrecognized request URL ({method}: {path})."
            return self._send_error(error, request_id)
        params = decode(url.query if method == "GET" else raw_body.decode())
        idempotency_key = self.headers.get("Idempotency-Key") if method == "POST" else None
        self._run_api(state, route, path_args, params, key, idempotency_key, request_id)

    def _run_api(self, state, route, path_args, params, key, idempotency_key, request_id):
        fingerprint = hashlib.sha256(
            json.dumps([route.pattern.pattern, path_args, params], sort_keys=True).encode()
        ).hexdigest()
        with state.store.lock:
            if idempotency_key:
                saved = state.store.idempotent_results.get((key, idempotency_key))
                if saved is not None:
                    saved_fingerprint, status, body = saved
                    if saved_fingerprint != fingerprint:
                        return self._send_error(
                            StripeError(
                                "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with. Try using a key other than "
                                f"'{idempotency_key}' if you meant to execute a different request.",
                                type="idempotency_error",
                            ),
                            request_id,
                        )
                    return self._send(status, body, request_id, {"Idempotent-Replayed": "true"})
            state.current_request = {"id": request_id, "idempotency_key": idempotency_key}
            try:
                result = route.handler(state, params, **path_args)
                status = 200
                if isinstance(result, dict) and "_seq" in result:
                    result = state.store.render(result, params.get("expand"))
                body = json.dumps(result, indent=2).encode()
                replayable = True
            except StripeError as error:
                status, body, replayable = (
                    error.status,
                    json.dumps(error.body()).encode(),
                    (error.replayable),
                )
            finally:
                state.current_request = None
            if idempotency_key and replayable and status < 500:
                state.store.idempotent_results[(key, idempotency_key)] = (
                    fingerprint,
                    status,
                    body,
                )
        self._send(status, body, request_id)

    def _run_page(self, state, route, path_args, query, raw_body) -> None:
        params = decode(raw_body.decode() if raw_body else query)
        with state.store.lock:
            try:
                response = route.handler(state, params, **path_args)
            except StripeError as error:
                response = Response(
                    error.status, error.message.encode(), {"Content-Type": "text/plain"}
                )
        self._send(response.status, response.body, None, response.headers)

    # ----- responses ---------------------------------------------------------------------------

    def _send_fault(self, fault, request_id: str) -> None:
        status = fault.status or 500
        headers = {"Stripe-Should-Retry": "true" if fault.should_retry else "false"}
        if status == 429:
            headers["Retry-After"] = str(fault.retry_after)
            error = StripeError(
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                status=429,
                code="rate_limit",
            )
        else:
            error = StripeError(
                "An unknown error occurred (injected fault).", status=status, type="api_error"
            )
        self._send(status, json.dumps(error.body()).encode(), request_id, headers)

    def _send_error(self, error: StripeError, request_id: str) -> None:
        self._send(error.status, json.dumps(error.body()).encode(), request_id, error.headers)

    def _send_json(self, status: int, body, request_id: str) -> None:
        self._send(status, json.dumps(body, indent=2).encode(), request_id)

    def _send(self, status: int, body: bytes, request_id, headers=None) -> None:
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if request_id:
                self.send_header("Request-Id", request_id)
            self.send_header("Stripe-Version", "2026-05-27.dahlia")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout fault); the outcome above stands regardless.
            pass


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: State) -> None:
        super().__init__(address, Handler)
        self.state = state
        state.base_url = f"http://{address[0]}:{self.server_address[1]}"
