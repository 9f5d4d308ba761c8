"""The quickstart: from a key to a first call in curl, Python and JavaScript, what every error
means, and how to read the rate-limit headers and retry.

Public, like the API reference: a visitor sees a made-up key prefix, a signed-in member the
newest working key's prefix their role lets them see (``portal.keys.examples``), never a
secret.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.api.problems import PROBLEM_TYPES
from portal.keys.examples import KEY_REST_PLACEHOLDER, key_example_for
from portal.organisation_access import membership_current_or_none


def quickstart(request: HttpRequest) -> HttpResponse:
    membership = membership_current_or_none(request)
    problems = sorted(PROBLEM_TYPES.values(), key=lambda problem: (problem.status, problem.slug))
    return render(
        request,
        "portal/quickstart.html",
        {
            "key": key_example_for(membership),
            "key_rest_placeholder": KEY_REST_PLACEHOLDER,
            "tier": membership.account.tier if membership is not None else None,
            "problems": problems,
        },
    )
