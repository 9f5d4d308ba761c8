"""Every page has the portal's icon, served from here (issue 16: no favicon)."""

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory

pytestmark = pytest.mark.django_db

ICON_LINK = '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">'


def test_favicon_ico_leads_to_the_icon_which_is_served(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 301
    assert response["Location"] == "/static/img/favicon.svg"
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content)


@pytest.mark.parametrize("path", ["/", "/pricing/", "/accounts/login/", "/status/"])
def test_portal_pages_link_the_icon(client, path):
    assert ICON_LINK in client.get(path).content.decode()


def test_the_admin_links_the_icon(admin_client):
    for path in ("/admin/", "/admin/portal/account/"):
        assert ICON_LINK in admin_client.get(path).content.decode(), path


def test_the_server_error_page_links_the_icon():
    page = render_to_string("500.html", request=RequestFactory().get("/"))

    assert ICON_LINK in page
