"""The quickstart: from a key to a first call in curl, Python and JavaScript, what every error
means, and how to read the rate-limit headers and retry.

Public, like the API reference: a visitor sees a made-up key prefix, a signed-in developer
their newest working key's prefix (``portal.keys.examples``), never a secret.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.api.problems import PROBLEM_TYPES
from portal.keys.examples import KEY_REST_PLACEHOLDER, key_example_for
from portal.selectors import account_for_user


def quickstart(request: HttpRequest) -> HttpResponse:
    account = account_for_user(request.user) if request.user.is_authenticated else None
    problems = sorted(PROBLEM_TYPES.values(), key=lambda problem: (problem.status, problem.slug))
    return render(
        request,
        "portal/quickstart.html",
        {
            "key": key_example_for(request.user),
            "key_rest_placeholder": KEY_REST_PLACEHOLDER,
            "tier": account.tier if account is not None else None,
            "problems": problems,
        },
    )
