#!/bin/sh
# PgBouncer in transaction mode in front of one database: DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD,
# POOL_SIZE (server connections), MAX_CLIENT_CONN.
set -eu
mkdir -p /tmp/pgbouncer
printf '"%s" "%s"\n' "$DB_USER" "$DB_PASSWORD" > /tmp/pgbouncer/userlist.txt
cat > /tmp/pgbouncer/pgbouncer.ini <<INI
[databases]
$DB_NAME = host=$DB_HOST port=${DB_PORT:-5432} dbname=$DB_NAME

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
auth_type = scram-sha-256
auth_file = /tmp/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = ${POOL_SIZE:-20}
max_client_conn = ${MAX_CLIENT_CONN:-500}
; psycopg sends the statement and lock timeouts in "options", which PgBouncer 1.18 cannot pass on per client: they
; are set on the role instead (deploy/pgbouncer-role-timeouts.sql; README, Scaling).
ignore_startup_parameters = options
unix_socket_dir =
INI
exec pgbouncer /tmp/pgbouncer/pgbouncer.ini
