"""Production (DEBUG off) is safe by default: it refuses the repository's keys and turns on TLS-only cookies, HSTS and
the HTTPS redirect by itself. Each test starts a real process with a controlled environment, as a deployment would."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
DEVELOPMENT_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789abcdefghijklmnop"
TEST_SUITE_FIELD_KEY = "c2VjcmV0LWZvci10ZXN0cy1vbmx5LW5vdC1yZWFsLWs="  # scripts/run_tests.py
PRODUCTION_SECRET_KEY = "p" * 20 + "-production-secret-" + "q" * 30


def production_env(tmp_path, **values) -> dict:
    """Only what a deployment sets (no DEBUG, nothing inherited from the test run), plus `values`."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    env.update({name: value for name, value in values.items() if value is not None})
    return env


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def required_keys() -> dict:
    return {"SECRET_KEY": PRODUCTION_SECRET_KEY, "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}


FORGE_A_PAYMENT_LINK = f"""
import django
django.setup()
from django.test.utils import override_settings
from payments.tokens import make_token, read_token
with override_settings(SECRET_KEY={DEVELOPMENT_SECRET_KEY!r}):
    forged = make_token(1)
print("accepted invoice", read_token(forged))
"""


def test_a_payment_link_forged_with_the_repository_key_is_never_accepted_in_production(tmp_path):
    """The review forged /pay/<token>/ for invoices 1, 2, 3 with the committed key: production must not run on it."""
    result = run(production_env(tmp_path, FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode()), "-c", FORGE_A_PAYMENT_LINK)
    assert "accepted invoice" not in result.stdout
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("secret_key, field_keys, named", [
    (None, "generated", "SECRET_KEY"),
    (DEVELOPMENT_SECRET_KEY, "generated", "SECRET_KEY"),
    ("change-me-in-production-0123456789abcdefghijklmnopqrstuvwxyz", "generated", "SECRET_KEY"),  # docker-compose's old default
    (PRODUCTION_SECRET_KEY, None, "FIELD_ENCRYPTION_KEYS"),
    (PRODUCTION_SECRET_KEY, TEST_SUITE_FIELD_KEY, "FIELD_ENCRYPTION_KEYS"),
    (PRODUCTION_SECRET_KEY, "generated," + TEST_SUITE_FIELD_KEY, "FIELD_ENCRYPTION_KEYS"),
])
def test_production_refuses_to_start_without_its_own_keys(tmp_path, secret_key, field_keys, named):
    field_keys = field_keys.replace("generated", Fernet.generate_key().decode()) if field_keys else None
    env = production_env(tmp_path, SECRET_KEY=secret_key, FIELD_ENCRYPTION_KEYS=field_keys)
    result = run(env, "-c", "import django; django.setup(); print('started')")
    assert result.returncode != 0 and "started" not in result.stdout
    assert "ImproperlyConfigured" in result.stderr and named in result.stderr.splitlines()[-1], result.stderr[-2000:]
    # The web server and the worker import the same settings; so does every management command.
    assert run(env, "manage.py", "check").returncode != 0


def test_production_starts_with_its_own_keys(tmp_path):
    result = run(production_env(tmp_path, **required_keys()), "-c", "import django; django.setup(); print('started')")
    assert result.returncode == 0 and "started" in result.stdout, result.stderr[-2000:]


def test_check_deploy_reports_the_development_keys_as_errors(tmp_path):
    """A development process (DEBUG on) may use them, but `check --deploy` says they must never be deployed."""
    result = run(production_env(tmp_path, DEBUG="true"), "manage.py", "check", "--deploy")
    assert result.returncode != 0
    assert "providers.E002" in result.stderr and "providers.E003" in result.stderr, result.stderr[-3000:]
    result = run(production_env(tmp_path, DEBUG="true", SECRET_KEY=DEVELOPMENT_SECRET_KEY, FIELD_ENCRYPTION_KEYS=TEST_SUITE_FIELD_KEY),
                 "manage.py", "check", "--deploy")
    assert "providers.E002" in result.stderr and "providers.E003" in result.stderr, result.stderr[-3000:]


def test_check_deploy_is_clean_with_only_the_required_environment(tmp_path):
    result = run(production_env(tmp_path, **required_keys()), "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


SHOW_SECURITY_SETTINGS = """
import django, json
django.setup()
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in (
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER",
    "SECURE_REDIRECT_EXEMPT")}))
"""


def security_settings(env: dict) -> dict:
    import json

    result = run(env, "-c", SHOW_SECURITY_SETTINGS)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_defaults_are_secure_even_when_tls_ends_at_a_proxy(tmp_path):
    shown = security_settings(production_env(tmp_path, **required_keys()))
    assert shown["SESSION_COOKIE_SECURE"] is True and shown["CSRF_COOKIE_SECURE"] is True
    assert shown["SECURE_HSTS_SECONDS"] >= 31536000
    assert shown["SECURE_SSL_REDIRECT"] is True
    assert shown["SECURE_PROXY_SSL_HEADER"] is None  # X-Forwarded-Proto is trusted only behind a proxy
    # Stripe's webhooks and the health probe are never redirected (see README, Security).
    assert {"^webhooks/", "^healthz$"} <= set(shown["SECURE_REDIRECT_EXEMPT"])
    behind_proxy = security_settings(production_env(tmp_path, BEHIND_PROXY="true", **required_keys()))
    assert behind_proxy["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert behind_proxy["SESSION_COOKIE_SECURE"] is True and behind_proxy["CSRF_COOKIE_SECURE"] is True


def test_development_keeps_plain_http_and_says_so(tmp_path):
    shown = security_settings(production_env(tmp_path, DEBUG="true"))
    assert shown["SESSION_COOKIE_SECURE"] is False and shown["SECURE_SSL_REDIRECT"] is False and shown["SECURE_HSTS_SECONDS"] == 0
