"""The test command behind `make test` and `.ci/run`: lint, then pytest against the real services.

Uses PostgreSQL and Redis on 127.0.0.1 when they answer. Under CI (CI=true) they must answer, or the
run fails; elsewhere the tests that need them are skipped with a reason and the rest run on SQLite.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/billing"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    in_ci = env.get("CI", "").lower() in {"1", "true", "yes"}
    postgres_up = reachable("127.0.0.1", 5432)
    redis_up = reachable("127.0.0.1", 6379)
    if in_ci and not (postgres_up and redis_up):
        print(f"CI needs PostgreSQL and Redis on 127.0.0.1 (postgres up: {postgres_up}, redis up: {redis_up}).")
        return 1
    if postgres_up:
        env.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    if redis_up:
        env.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    env["SERVICES_AVAILABLE"] = "1" if (postgres_up and redis_up) else "0"
    # In-process tests run tasks eagerly; tests that start a real worker turn this off for it.
    env.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
    env.setdefault("FIELD_ENCRYPTION_KEYS", "c2VjcmV0LWZvci10ZXN0cy1vbmx5LW5vdC1yZWFsLWs=")

    bin_dir = Path(sys.executable).parent
    lint = subprocess.run([str(bin_dir / "ruff"), "check", "."], cwd=ROOT)
    if lint.returncode != 0:
        return lint.returncode
    result = subprocess.run([str(bin_dir / "pytest"), *argv], cwd=ROOT, env=env)
    if result.returncode == 5:
        print("pytest collected no tests: that is a failure here.")
        return 1
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
