# Stands in for python:3.11-slim: Debian 12's Python 3.11 in a virtual environment that is first on PATH.
FROM local/bookworm:minbase
COPY ca-certificates/ /usr/local/share/ca-certificates/
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && update-ca-certificates && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
