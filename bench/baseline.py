"""The baseline endpoint of the ingest benchmark: a bare Django view that stores the body with one INSERT.

Mounted only when BENCH_BASELINE=1 (see config/urls.py); the table is created by the benchmark.
"""

from django.db import connection
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

TABLE_SQL = "CREATE TABLE IF NOT EXISTS bench_baseline_event (id bigserial PRIMARY KEY, body text NOT NULL)"


@csrf_exempt
def baseline_ingest(request):
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_baseline_event (body) VALUES (%s)", [request.body.decode()])
    return HttpResponse("ok")


def baseline_page(request, size: int):
    """The payment page's baseline: the same stack (middleware, URL routing, template engine) serving a bare
    template of `size` bytes with no query."""
    from django.template import engines

    template = engines["django"].from_string("<!doctype html><html><body>{{ body }}</body></html>")
    return HttpResponse(template.render({"body": "x" * size}, request))
