"""The demo behind `make run`: migrate, demo data, logins, web server and task processing.

With STRIPE_PUBLISHABLE_KEY, STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET (test keys) in the environment it
uses Stripe itself (forward the webhooks with `stripe listen --forward-to <the printed endpoint>`).
Without them it works offline: localstripe (devtools/localstripe_server.py) stands in for Stripe on
127.0.0.1, the demo setting points at it, its signed webhooks are registered to this server, and the
payment page offers clearly labelled offline test payments (Stripe.js cannot load without internet). Once the
server answers, `manage.py demo_payout` pays DEMO-1003 and has localstripe pay out the day: one reconciled payout
in the admin; then `manage.py demo_dispute` has the cardholder's bank dispute that charge: one open dispute for finance
to answer in the admin (Submit evidence, or Accept dispute).

Tasks run in a Celery worker when CELERY_BROKER_URL (or REDIS_URL) is set, otherwise in-process after
each commit. Data is kept in db.sqlite3 (and .demo/localstripe.pickle) unless DATABASE_URL is set (a SQLite
DATABASE_URL keeps localstripe's objects beside its file).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Fake, test-mode-shaped credentials for the offline stand-in (localstripe accepts any sk_ key).
OFFLINE_KEYS = {"STRIPE_PUBLISHABLE_KEY": "pk_test_offline_demo", "STRIPE_SECRET_KEY": "sk_test_offline_demo",
                "STRIPE_WEBHOOK_SECRET": "whsec_offline_demo"}


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, timeout: float = 20, what: str = "localstripe") -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start on port {port}")
        time.sleep(0.1)


def stand_in_store(database_url: str) -> Path:
    """Where localstripe keeps its objects: beside the demo's own SQLite file, so a database started afresh gets a
    fresh Stripe too (the day's payout would otherwise carry charges the new books never saw)."""
    if database_url.startswith("sqlite:///"):
        database = Path(database_url.removeprefix("sqlite:///"))
        return (database if database.is_absolute() else ROOT / database).with_suffix(".localstripe.pickle")
    return ROOT / ".demo" / "localstripe.pickle"


def manage(env: dict, *args: str, capture: bool = False) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, text=True,
                            capture_output=capture)
    return result.stdout if capture else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the demo (see README, 'Try it').")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stripe-port", type=int, default=8420)
    args = parser.parse_args(argv)

    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "true"), "SITE_URL": f"http://127.0.0.1:{args.port}"}
    online = all(os.environ.get(name) for name in OFFLINE_KEYS)
    children: list[subprocess.Popen] = []
    try:
        if not online:
            if port_open(args.stripe_port):
                raise SystemExit(f"Port {args.stripe_port} is taken: pass --stripe-port.")
            store = stand_in_store(env.get("DATABASE_URL", ""))
            store.parent.mkdir(exist_ok=True)
            children.append(subprocess.Popen([sys.executable, "-m", "devtools.localstripe_server", "--port", str(args.stripe_port),
                                              "--store", str(store)], cwd=ROOT, env=env))
            wait_port(args.stripe_port)
            env.update(OFFLINE_KEYS, STRIPE_API_BASE=f"http://127.0.0.1:{args.stripe_port}", STRIPE_OFFLINE_DEMO="true")
        manage(env, "migrate", "--noinput", "-v0")
        output = manage(env, "load_demo_data", capture=True)
        print(output, end="")
        endpoint = next((line.rsplit(" ", 1)[-1] for line in output.splitlines() if "webhook endpoint:" in line), "")
        webhook_url = f"http://127.0.0.1:{args.port}{endpoint}"
        if online:
            print(f"Stripe test mode. Forward the webhooks: stripe listen --forward-to {webhook_url}")
        else:
            data = f"url={webhook_url}&secret={OFFLINE_KEYS['STRIPE_WEBHOOK_SECRET']}".encode()
            urllib.request.urlopen(f"http://127.0.0.1:{args.stripe_port}/_config/webhooks/demo", data=data, timeout=10)  # noqa: S310
            print(f"OFFLINE demo: localstripe on 127.0.0.1:{args.stripe_port} stands in for Stripe and sends its signed webhooks "
                  f"to {webhook_url}.\nThe payment page offers offline test payments (no real money, no Stripe.js).")
        if env.get("CELERY_BROKER_URL") or env.get("REDIS_URL"):
            children.append(subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "--concurrency=2",
                                              "--loglevel=WARNING"], cwd=ROOT, env=env))  # all queues (CELERY_TASK_QUEUES)
            print("Tasks: Celery worker (with beat) on", env.get("CELERY_BROKER_URL") or env.get("REDIS_URL"))
        else:
            print("Tasks: in-process after each commit (set REDIS_URL to use a Celery worker).")
        server = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{args.port}", "--noreload"], cwd=ROOT, env=env)
        children.append(server)
        if not online:  # one reconciled payout, then one open dispute of its charge; the server must answer the webhooks
            wait_port(args.port, timeout=60, what="the web server")
            python = shlex.quote(sys.executable)  # the dispute after the payout, even if none was made
            children.append(subprocess.Popen(["/bin/sh", "-c", f"{python} manage.py demo_payout; {python} manage.py demo_dispute"],
                                             cwd=ROOT, env=env))
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()


if __name__ == "__main__":
    sys.exit(main())
