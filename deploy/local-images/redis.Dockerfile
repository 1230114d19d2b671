# Stands in for redis:7: Debian 12's Redis 7.0, listening on every interface of its container, nothing kept on disk.
FROM local/bookworm:minbase
RUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
