# Stands in for postgres:16 with what the compose file uses of it: POSTGRES_DB/USER/PASSWORD, the data directory
# /var/lib/postgresql/data (a volume) and pg_isready. Debian 12 ships PostgreSQL 15.
FROM local/bookworm:minbase
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /run/postgresql /docker-entrypoint-initdb.d && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
ENTRYPOINT ["sh", "/usr/local/bin/postgres-entrypoint.sh"]
