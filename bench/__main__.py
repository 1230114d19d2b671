"""`make bench` / `python -m bench [--quick] [--only NAME ...]`: run the benchmarks, print a table, write JSON.

Every benchmark reports a ratio against a baseline measured in the same run. `--quick` is the smoke
mode CI runs (tiny sizes; it proves the benchmarks work, its numbers mean little).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime

from bench.common import ROOT, bench_env, prepare_database

BENCHMARKS = ("ingest", "processing", "time_to_books", "fairness", "refunds", "page", "payouts", "dashboard", "retention", "chaos")


def machine() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, default=list(BENCHMARKS))
    args = parser.parse_args(argv)

    env = bench_env()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    prepare_database(env)
    import django

    django.setup()

    report: dict = {"started_at": datetime.now(UTC).isoformat(), "quick": args.quick, "machine": machine(), "results": {}}
    failures: list[str] = []
    for name in args.only:
        started = time.perf_counter()
        module = __import__(f"bench.{name}", fromlist=["run", "check", "table"])
        result = module.run(env, quick=args.quick)
        result["seconds"] = round(time.perf_counter() - started, 1)
        report["results"][name] = result
        print(module.table(result))
        print()
        failures.extend(module.check(result))

    results = report["results"]
    if "ingest" in results and "processing" in results:
        # The processing target is relative: one worker process vs one web process (gunicorn runs 2; at 16 they are busy).
        per_web_process = results["ingest"]["levels"][16]["service_rps"] / 2 if 16 in results["ingest"]["levels"] else 0
        if per_web_process:
            ratio = results["processing"]["events_per_second_per_worker"] / per_web_process
            results["processing"]["vs_one_web_process"] = round(ratio, 2)
            print(f"processing vs ingest: one worker process drains {results['processing']['events_per_second_per_worker']} events/s, "
                  f"one web process ingested {per_web_process:.0f}/s in the ingest benchmark minutes earlier: ratio {ratio:.2f}; "
                  f"paired with an ingest measurement right after each drain: {results['processing'].get('vs_one_web_process_paired')} "
                  "(target >= 1.0)")
    os.makedirs(ROOT / "bench" / "results", exist_ok=True)
    path = ROOT / "bench" / "results" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"results written to {path.relative_to(ROOT)}")
    if failures:
        print("correctness checks failed:")
        for failure in failures:
            print(f"- {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
