"""Path templates (``/echo/{word}``) as OpenAPI writes them, and the values that fill them.

A template is parsed once into a regex that matches a request path and a canonical route key
(``/echo/{}``) under which two templates that match the same paths are the same route. Filling
the upstream template is where a caller could try to leave the declared path, so every value is
refused unless it is one plain, non-empty segment (``path_value_refusal``).
"""

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote

# One parameter in a template: {name}, name as OpenAPI allows it (letters, digits, _ . -).
PARAM_RE = re.compile(r"\{([A-Za-z0-9_.\-]+)\}")
# A literal segment part: RFC 3986 pchar without '%' escapes beyond what clients may send.
_LITERAL_RE = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@%]*$")
# What a filled-in value keeps unencoded: RFC 3986 pchar minus '%' (so nothing decodes twice).
_SEGMENT_SAFE = "-._~!$&'()*+,;=:@"


class TemplateError(ValueError):
    """A path template that cannot be served."""


@dataclass(frozen=True, slots=True)
class PathTemplate:
    template: str
    params: tuple[str, ...]
    regex: re.Pattern[str]
    route_key: str

    def match(self, path: str) -> dict[str, str] | None:
        """The parameters by name, still percent-encoded; None when ``path`` does not match."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {name: found.group(f"p{index}") for index, name in enumerate(self.params)}

    def fill(self, values: dict[str, str]) -> str:
        """The template with each parameter replaced by its (decoded) value, encoded again as
        one segment: whatever it holds cannot add a separator."""
        return PARAM_RE.sub(lambda m: quote(values[m.group(1)], safe=_SEGMENT_SAFE), self.template)


@lru_cache(maxsize=4096)
def parse_template(template: str) -> PathTemplate:
    """Parse ``/a/{b}/c``: starts with '/', no empty segments, no query or fragment, each
    parameter a whole segment, each named once."""
    if not template.startswith("/"):
        raise TemplateError("must start with '/'")
    if "?" in template or "#" in template:
        raise TemplateError("must not hold a query or a fragment")
    segments = template[1:].split("/")
    if template != "/" and any(segment == "" for segment in segments[:-1]):
        raise TemplateError("must not hold empty segments ('//')")
    params: list[str] = []
    pattern = ""
    route = ""
    for segment in segments if template != "/" else []:
        pattern += "/"
        route += "/"
        if segment in (".", ".."):
            raise TemplateError("must not hold '.' or '..' segments")
        found = PARAM_RE.fullmatch(segment)
        if found:
            name = found.group(1)
            if name in params:
                raise TemplateError(f"names the parameter {{{name}}} twice")
            params.append(name)
            group = "p" + str(len(params) - 1)
            pattern += f"(?P<{group}>[^/]+)"
            route += "{}"
            continue
        if "{" in segment or "}" in segment:
            raise TemplateError(f"a parameter must be a whole segment: {segment!r}")
        if not _LITERAL_RE.match(segment):
            raise TemplateError(f"holds characters a path may not: {segment!r}")
        pattern += re.escape(segment)
        route += segment
    # Groups are named p0, p1...: parameter names may hold '.' and '-', which group names may not.
    return PathTemplate(
        template=template,
        params=tuple(params),
        regex=re.compile(pattern or "/"),
        route_key=route or "/",
    )


def path_value_refusal(raw: str) -> str | None:
    """Why a raw (percent-encoded) path parameter may not fill a template; None when it may.

    Refused: empty values, '.' and '..' (after decoding: %2e%2e is '..'), encoded slashes and
    backslashes (%2F, %5C, which many servers decode into separators), backslashes, anything
    that reads as an absolute URL (a scheme or '//'), and control characters.
    """
    if raw == "":
        return "is empty"
    lowered = raw.lower()
    if "%2f" in lowered or "%5c" in lowered:
        return "holds an encoded slash or backslash"
    value = unquote(raw)
    if value in (".", ".."):
        return "is a '.' or '..' segment"
    if "\\" in value or "/" in value:
        return "holds a slash or backslash"
    if ":" in value and re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", value):
        return "reads as an absolute URL"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return "holds control characters"
    return None


def raw_path_refusal(raw_path: str) -> str | None:
    """Why a request path (raw, percent-encoded) is refused before any route is looked at;
    None when it may be matched. The same rules as a parameter's, for the whole path: no empty
    segment ('//'), no '.' or '..' segment (encoded or not), no encoded slash or backslash, no
    backslash."""
    if "//" in raw_path:
        return "holds an empty segment ('//')"
    lowered = raw_path.lower()
    if "%2f" in lowered or "%5c" in lowered or "\\" in raw_path:
        return "holds a backslash or an encoded slash"
    if any(unquote(segment) in (".", "..") for segment in raw_path.split("/")):
        return "holds a '.' or '..' segment"
    return None
