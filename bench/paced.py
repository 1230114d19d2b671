"""Paced (open-loop) load generator, run as its own process: POSTs prepared requests at a fixed rate, whatever the
server's answer time (a burst of slow answers does not slow the senders down, as Stripe's deliveries would not).

Usage (by bench.time_to_books): python -m bench.paced URL_JSON_FILE RATE SECONDS
Prints one JSON line: {"sent", "errors", "statuses", "late_ms_p99", "cpu_seconds"} (cpu_seconds: its own, user + system).
"""

import http.client
import json
import resource
import sys
import threading
import time
from urllib.parse import urlsplit

THREADS = 16


def sender(requests_, index0, rate, started, deadline, results, lock):
    connection, late, statuses, errors, sent = None, [], {}, 0, 0
    index = index0
    while True:
        due = started + index / rate
        if due >= deadline or index >= len(requests_):
            break
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        late.append(max(0.0, (time.perf_counter() - due) * 1000))
        url, body, headers = requests_[index]
        index += THREADS
        parts = urlsplit(url)
        try:
            if connection is None:
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            connection.request("POST", parts.path, body=body.encode(), headers=headers)
            response = connection.getresponse()
            response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
            sent += 1
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException):
            errors += 1
            connection = None
    with lock:
        results["sent"] += sent
        results["errors"] += errors
        results["late"].extend(late)
        for status, count in statuses.items():
            results["statuses"][str(status)] = results["statuses"].get(str(status), 0) + count


def main():
    path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    with open(path) as handle:
        requests_ = [(item["url"], item["body"], item["headers"]) for item in json.load(handle)]
    results = {"sent": 0, "errors": 0, "statuses": {}, "late": []}
    lock = threading.Lock()
    started = time.perf_counter() + 0.05
    threads = [threading.Thread(target=sender, args=(requests_, i, rate, started, started + seconds, results, lock)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    late = sorted(results.pop("late")) or [0.0]
    results["late_ms_p99"] = round(late[min(len(late) - 1, int(len(late) * 0.99))], 1)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
