"""Admin form fields of the gateway."""

from django import forms
from django.core.exceptions import ValidationError


def statuses_text(codes: list[int]) -> str:
    """``[200, 201, ..., 299, 404]`` as ``200-299, 404``."""
    runs: list[list[int]] = []
    for code in sorted(set(codes)):
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


class StatusListField(forms.CharField):
    """Billable statuses written as an operator thinks of them: ``200-299, 404``."""

    def prepare_value(self, value: object) -> object:
        if isinstance(value, list):
            return statuses_text(value)
        return value

    def to_python(self, value: object) -> list[int]:  # type: ignore[override]
        text = str(super().to_python(value) or "")
        codes: set[int] = set()
        for part in filter(None, (p.strip() for p in text.split(","))):
            low, _, high = part.partition("-")
            if not low.strip().isdigit() or (high and not high.strip().isdigit()):
                raise ValidationError(f"{part!r} is not a status code or a range like 200-299.")
            start, end = int(low), int(high or low)
            if not 100 <= start <= end <= 599:
                raise ValidationError(f"{part!r}: status codes run from 100 to 599.")
            codes.update(range(start, end + 1))
        if not codes:
            raise ValidationError("List at least one billable status, e.g. 200-299.")
        return sorted(codes)
