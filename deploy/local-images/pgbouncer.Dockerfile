# PgBouncer from Debian 12's package (1.18), for deploy/docker-compose.pgbouncer.yml. Configured from the environment
# by pgbouncer-entrypoint.sh; pg_isready (postgresql-client) for the health check.
FROM local/bookworm:minbase
RUN apt-get update && apt-get install -y --no-install-recommends pgbouncer postgresql-client && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /run/pgbouncer && chown postgres:postgres /run/pgbouncer
COPY pgbouncer-entrypoint.sh /usr/local/bin/pgbouncer-entrypoint.sh
USER postgres
EXPOSE 6432
ENTRYPOINT ["sh", "/usr/local/bin/pgbouncer-entrypoint.sh"]
