"""Stripe's error body, raised by handlers and rendered by the server."""

from __future__ import annotations

DOC_BASE = "https://stripe.com/docs/error-codes"


class StripeError(Exception):
    """An API error in the shape Stripe returns (`{"error": {...}}`).

    `replayable` says whether an Idempotency-Key stores this outcome: Stripe saves a result once the
    endpoint has started executing, but not for requests that failed parameter validation.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        replayable: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.replayable = replayable

    def body(self) -> dict:
        error: dict = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"{DOC_BASE}/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": error}


def unknown_parameter(name: str) -> StripeError:
    return StripeError(
        f"Received unknown parameter: {name}",
        code="parameter_unknown",
        param=name,
        replayable=False,
    )


def missing_parameter(name: str) -> StripeError:
    return StripeError(
        f"Missing required param: {name}.",
        code="parameter_missing",
        param=name,
        replayable=False,
    )


def invalid_parameter(
    name: str, message: str, code: str = "parameter_invalid_string"
) -> StripeError:
    return StripeError(message, code=code, param=name, replayable=False)


def resource_missing(kind: str, object_id: str, param: str = "id") -> StripeError:
    return StripeError(
        f"No such {kind}: '{object_id}'",
        status=404,
        code="resource_missing",
        param=param,
    )


def not_found_path(method: str, path: str) -> StripeError:
    return StripeError(
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
        status=404,
    )
