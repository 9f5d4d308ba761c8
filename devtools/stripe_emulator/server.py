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
from .billing import catch_up
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
            return self._run_page(state, route, path_args, url.query, raw_body, method)
        with state.store.lock:
            state.store.request_counts[f"{method} {path}"] += 1
        # Authentication, the rate limiter and routing come before Stripe's idempotency layer:
        # their refusals are not saved under an Idempotency-Key ("Advanced error handling",
        # https://docs.stripe.com/error-low-level#idempotency).
        key = _secret_key(self.headers.get("Authorization"))
        if not key or not key.startswith("sk_test_"):
            return self._send_error(_auth_error(key), request_id)
        fault = state.faults.take(method, path)
        if fault is not None and fault.status and fault.status < 500 and not fault.delay:
            return self._send_fault(fault, request_id)
        if route is None:
            error = not_found_path(method, path)
            if path_exists:
                error.message = f"Unrecognized request URL ({method}: {path})."
            return self._send_error(error, request_id)
        try:
            params = _params(method, path, url.query, raw_body)
        except ValueError:
            return self._send_error(StripeError("Invalid JSON body.", replayable=False), request_id)
        idempotency_key = _idempotency_key(method, path, self.headers)
        slot: tuple[str, str] | None = None
        if idempotency_key:
            slot = (key, idempotency_key)
            with state.store.lock:
                if slot in state.store.in_flight:
                    return self._send_error(_key_in_use(idempotency_key), request_id)
                state.store.in_flight.add(slot)
        answer = None
        try:
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
                if not fault.apply:
                    # Lost before Stripe executed it: nothing done, nothing saved.
                    answer = _fault_answer(fault, saved=False)
                fault = None  # with `apply`, processed after the delay like any request
            elif fault is not None and not (fault.status and fault.status >= 500):
                fault = None
            if answer is None:
                answer = self._run_api(
                    state, route, path_args, params, key, idempotency_key, request_id, fault
                )
        finally:
            # The key is free before the answer leaves: a client that retries the moment it has
            # the answer must get the saved result, not "in use".
            if slot is not None:
                with state.store.lock:
                    state.store.in_flight.discard(slot)
        status, body, headers = answer
        self._send(status, body, request_id, headers)

    def _run_api(self, state, route, path_args, params, key, idempotency_key, request_id, fault):
        """Run an API request under the store's lock: its status, body and headers."""
        fingerprint = hashlib.sha256(
            json.dumps([route.pattern.pattern, path_args, params], sort_keys=True).encode()
        ).hexdigest()
        store = state.store
        with store.lock:
            catch_up(state)  # what real time brought due (a demo left running past a period end)
            if idempotency_key:
                saved = store.idempotent_results.get((key, idempotency_key))
                if saved is not None and store.now() - saved["created"] >= IDEMPOTENCY_WINDOW:
                    # "You can remove keys from the system automatically after they're at least
                    # 24 hours old. We generate a new request if a key is reused after the
                    # original is pruned." (Idempotent requests,
                    # https://docs.stripe.com/api/idempotent_requests)
                    del store.idempotent_results[(key, idempotency_key)]
                    saved = None
                if saved is not None:
                    if saved["fingerprint"] != fingerprint:
                        return _error_answer(_key_reused(idempotency_key))
                    replayed = {**saved["headers"], "Idempotent-Replayed": "true"}
                    return saved["status"], saved["body"].encode(), replayed
            rollback = None
            if fault is not None and not fault.apply:
                rollback = (store.snapshot(), list(state.webhooks.pending))
            state.current_request = {"id": request_id, "idempotency_key": idempotency_key}
            try:
                status, body, saveable = _execute(state, route, path_args, params)
            finally:
                state.current_request = None
            headers: dict[str, str] = {}
            if fault is not None and saveable:
                # The endpoint began executing and failed: Stripe answers 500 and, for a request
                # with an Idempotency-Key, saves that 500 to replay it ("Idempotent requests",
                # https://docs.stripe.com/api/idempotent_requests). Without `apply` nothing of
                # what the request did survives.
                if rollback is not None:
                    store.restore(rollback[0])
                    state.webhooks.pending[:] = rollback[1]
                status, body, headers = _fault_answer(fault, saved=bool(idempotency_key))
            if idempotency_key and saveable:
                # Saved "regardless of whether it succeeds or fails ... including 500 errors";
                # refused parameters (`saveable` False) never began executing and are not saved.
                store.idempotent_results[(key, idempotency_key)] = {
                    "fingerprint": fingerprint,
                    "status": status,
                    "body": body.decode(),
                    "headers": headers,
                    "created": store.now(),
                }
            if route.method != "GET":
                state.persist()
        return status, body, headers

    def _run_page(self, state, route, path_args, query, raw_body, method) -> None:
        params = decode(raw_body.decode() if raw_body else query)
        with state.store.lock:
            catch_up(state)
            try:
                response = route.handler(state, params, **path_args)
            except StripeError as error:
                response = Response(
                    error.status, error.message.encode(), {"Content-Type": "text/plain"}
                )
            if method != "GET":
                state.persist()
        self._send(response.status, response.body, None, response.headers)

    # ----- responses ---------------------------------------------------------------------------

    def _send_fault(self, fault, request_id: str) -> None:
        status, body, headers = _fault_answer(fault, saved=False)
        self._send(status, body, request_id, headers)

    def _send_error(self, error: StripeError, request_id: str) -> None:
        status, body, headers = _error_answer(error)
        self._send(status, body, request_id, headers)

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


# ----- helpers ---------------------------------------------------------------------------------

IDEMPOTENCY_WINDOW = 24 * 3600


def _params(method: str, path: str, query: str, raw_body: bytes) -> dict:
    """Request parameters: v1 form-encoded (stripe-python sends GET and DELETE parameters in the
    query string, POST ones in the body); v2 POST bodies are JSON."""
    if path.startswith("/v2/") and method == "POST":
        data = json.loads(raw_body or b"{}")
        if not isinstance(data, dict):
            raise ValueError("a v2 request body is a JSON object")
        return data
    params = decode(query) if query else {}
    if method != "GET" and raw_body:
        params.update(decode(raw_body.decode()))
    return params


def _idempotency_key(method: str, path: str, headers) -> str | None:
    """Stripe ignores an Idempotency-Key on v1 GET and DELETE requests ("idempotent by
    definition"); API v2 takes one on POST and DELETE."""
    if method == "POST" or (method == "DELETE" and path.startswith("/v2/")):
        return headers.get("Idempotency-Key") or None
    return None


def _execute(state, route, path_args, params) -> tuple[int, bytes, bool]:
    """Run a handler: (status, body, whether an Idempotency-Key saves this outcome)."""
    try:
        result = route.handler(state, params, **path_args)
        if isinstance(result, dict) and "_seq" in result:
            result = state.store.render(result, params.get("expand"))
        return 200, json.dumps(result, indent=2).encode(), True
    except StripeError as error:
        return error.status, json.dumps(error.body()).encode(), error.replayable
    except Exception:  # a bug here is a 500 once execution began, as Stripe's would be
        logger.exception("emulator handler failed: %s", route.pattern.pattern)
        bug = StripeError("An unknown error occurred (emulator bug).", status=500, type="api_error")
        return 500, json.dumps(bug.body()).encode(), True


def _fault_answer(fault, saved: bool) -> tuple[int, bytes, dict[str, str]]:
    status = fault.status or 500
    should_retry = fault.should_retry
    if should_retry is None:
        # Stripe-Should-Retry: stripe-python expects "false" on most 500s "since our idempotency
        # framework would typically replay it anyway".
        should_retry = not (saved and status >= 500)
    headers = {"Stripe-Should-Retry": "true" if should_retry else "false"}
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
    return status, json.dumps(error.body()).encode(), headers


def _error_answer(error: StripeError) -> tuple[int, bytes, dict[str, str]]:
    return error.status, json.dumps(error.body()).encode(), error.headers


def _key_reused(idempotency_key: str) -> StripeError:
    return StripeError(
        "Keys for idempotent requests can only be used with the same parameters they were first "
        f"used with. Try using a key other than '{idempotency_key}' if you meant to execute a "
        "different request.",
        type="idempotency_error",
        replayable=False,
    )


def _key_in_use(idempotency_key: str) -> StripeError:
    # "If ... the request conflicts with another request that's executing concurrently, we don't
    # save the idempotent result" (Idempotent requests); stripe-python retries a 409.
    return StripeError(
        "There is currently another in-progress request using this Stripe Idempotency Key (that "
        "probably means you submitted twice, and the other request is still going through): "
        f"{idempotency_key}. Please try again later.",
        status=409,
        code="idempotency_key_in_use",
        replayable=False,
    )


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: State) -> None:
        super().__init__(address, Handler)
        self.state = state
        state.base_url = f"http://{address[0]}:{self.server_address[1]}"
