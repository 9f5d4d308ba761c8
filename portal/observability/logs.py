"""``LOG_FORMAT=json``: one JSON object per line, for log shippers that parse rather than read.

A few lines of our own rather than a package: the standard library's ``json`` escapes newlines,
so a traceback stays inside its line.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest

# A proxy's request id, when one is sent (nginx $request_id, an AWS ALB's X-Amzn-Trace-Id).
REQUEST_ID_HEADERS = ("HTTP_X_REQUEST_ID", "HTTP_X_AMZN_TRACE_ID")
REQUEST_ID_MAX = 200


class JsonLogFormatter(logging.Formatter):
    """``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``; ``exc_info`` (the formatted
    traceback) when there is one; ``method``, ``path``, ``status`` and ``request_id`` when the
    record carries a request, as Django's request and security loggers' records do."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # django.server's records carry the socket as "request"; only an HttpRequest is read.
        request = getattr(record, "request", None)
        if isinstance(request, HttpRequest):
            entry["method"] = request.method
            entry["path"] = request.path
            request_id = next(
                (request.META[name] for name in REQUEST_ID_HEADERS if request.META.get(name)), None
            )
            if request_id:
                entry["request_id"] = str(request_id)[:REQUEST_ID_MAX]
        status_code = getattr(record, "status_code", None)
        if isinstance(status_code, int):
            entry["status"] = status_code
        # Cached on the record as logging.Formatter does, for the other handlers.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)
