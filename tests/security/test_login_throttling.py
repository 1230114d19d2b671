"""Admin login throttling (django-axes): a few wrong passwords for one user from one address lock that pair out, with
a sentence; the admin and a management command unlock it. The review logged in after 39 wrong passwords."""

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"
ATTACKER = "203.0.113.7"


@pytest.fixture
def clerk():
    return User.objects.create_user("clerk", password=PASSWORD, is_staff=True)


def log_in(password: str, *, username: str = "clerk", address: str = ATTACKER, client: Client | None = None, **headers):
    client = client or Client()
    response = client.post(reverse("admin:login"), {"username": username, "password": password, "next": "/admin/"},
                           REMOTE_ADDR=address, **headers)
    return client, response


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def lock_out(username: str = "clerk", address: str = ATTACKER, **headers) -> None:
    for attempt in range(5):
        log_in(f"wrong-{attempt}", username=username, address=address, **headers)


def test_wrong_passwords_lock_the_user_out_from_that_address_even_for_the_right_password(clerk, settings):
    lock_out()
    client, response = log_in(PASSWORD)
    assert not logged_in(client)
    assert response.status_code == 429
    text = response.content.decode()
    assert "Too many failed logins" in text and "clerk" in text and "administrator" in text and "after 60 minutes" in text


def test_a_few_mistakes_do_not_lock_anyone_out_and_a_success_forgets_them(clerk):
    for attempt in range(4):
        log_in(f"wrong-{attempt}")
    client, _ = log_in(PASSWORD)
    assert logged_in(client)
    for attempt in range(4):  # the success reset the count
        log_in(f"wrong-again-{attempt}")
    client, _ = log_in(PASSWORD)
    assert logged_in(client)


def test_the_lockout_is_per_user_and_address(clerk):
    User.objects.create_user("colleague", password=PASSWORD, is_staff=True)
    lock_out()
    client, _ = log_in(PASSWORD, address="198.51.100.20")  # the clerk at the office
    assert logged_in(client)
    client, _ = log_in(PASSWORD, username="colleague")  # another user behind the attacker's address
    assert logged_in(client)


def test_a_forged_forwarded_for_header_does_not_escape_the_lockout(clerk):
    """Without BEHIND_PROXY the client's own X-Forwarded-For is never the address."""
    for attempt in range(5):
        log_in(f"wrong-{attempt}", HTTP_X_FORWARDED_FOR=f"10.0.0.{attempt}")
    client, response = log_in(PASSWORD, HTTP_X_FORWARDED_FOR="10.0.0.99")
    assert not logged_in(client) and response.status_code == 429


def test_behind_a_proxy_the_lockout_follows_the_address_the_proxy_saw(clerk, settings):
    settings.BEHIND_PROXY = True
    proxy = "10.0.0.2"
    lock_out(address=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.1, {ATTACKER}")  # the client may prepend anything
    client, _ = log_in(PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.99, {ATTACKER}")
    assert not logged_in(client)
    client, _ = log_in(PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR="198.51.100.20")  # the clerk, through the same proxy
    assert logged_in(client)


@pytest.mark.parametrize("command, args", [
    ("axes_reset_username", ["clerk"]),
    ("axes_reset_ip_username", [ATTACKER, "clerk"]),
])
def test_a_management_command_unlocks(clerk, command, args):
    lock_out()
    call_command(command, *args)
    client, _ = log_in(PASSWORD)
    assert logged_in(client)


def test_an_administrator_unlocks_from_the_admin(clerk):
    from axes.models import AccessAttempt

    lock_out()
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password="root-password-123"))
    changelist = reverse("admin:axes_accessattempt_changelist")
    assert "clerk" in admin.get(changelist).content.decode()
    attempt = AccessAttempt.objects.get(username="clerk")
    response = admin.post(changelist, {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"})
    assert response.status_code == 302
    client, _ = log_in(PASSWORD)
    assert logged_in(client)
