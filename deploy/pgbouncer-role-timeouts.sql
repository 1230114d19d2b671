-- Behind PgBouncer the app's startup option (-c statement_timeout=... -c lock_timeout=..., config/settings.py) does
-- not reach PostgreSQL: the role carries the same limits (DB_STATEMENT_TIMEOUT_MS, DB_LOCK_TIMEOUT_MS defaults).
ALTER ROLE CURRENT_USER SET statement_timeout = '30s';
ALTER ROLE CURRENT_USER SET lock_timeout = '10s';
