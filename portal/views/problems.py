"""The pages the API's problem ``type`` URIs point at (RFC 9457 §3.1.1)."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from portal.api.problems import PROBLEM_TYPES


def problem_type(request: HttpRequest, slug: str) -> HttpResponse:
    problem = PROBLEM_TYPES.get(slug)
    if problem is None:
        raise Http404("No such problem type")
    return render(request, "portal/problem_type.html", {"problem": problem})
