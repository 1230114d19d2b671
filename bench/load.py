"""Load generator, run as its own process: POSTs prepared requests at a fixed concurrency.

Usage (by bench.ingest): python -m bench.load URL_JSON_FILE CONCURRENCY SECONDS
Prints one JSON line: {"count", "errors", "statuses", "elapsed", "latencies_ms": [...]}.
"""

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


def worker(requests_, start_index, step, deadline, results, lock):
    latencies, statuses, errors = [], {}, 0
    connection = None
    index = start_index
    while time.perf_counter() < deadline:
        url, body, headers = requests_[index % len(requests_)]
        index += step
        parts = urlsplit(url)
        if connection is None:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        started = time.perf_counter()
        try:
            connection.request("POST", parts.path, body=body.encode(), headers=headers)
            response = connection.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException):
            errors += 1
            connection = None
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[response.status] = statuses.get(response.status, 0) + 1
    with lock:
        results["latencies_ms"].extend(latencies)
        results["errors"] += errors
        for status, count in statuses.items():
            results["statuses"][str(status)] = results["statuses"].get(str(status), 0) + count


def main():
    path, concurrency, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with open(path) as handle:
        requests_ = [(item["url"], item["body"], item["headers"]) for item in json.load(handle)]
    results = {"latencies_ms": [], "errors": 0, "statuses": {}}
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + seconds
    threads = [threading.Thread(target=worker, args=(requests_, i, concurrency, deadline, results, lock)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results["elapsed"] = time.perf_counter() - started
    results["count"] = len(results["latencies_ms"])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
