from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import healthz

admin.site.site_header = "Billing back office"
admin.site.site_title = "Billing back office"
admin.site.index_template = "admin/finance/index.html"  # the admin's home links the finance dashboard

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # The two paths a stranger hits most, first: Stripe's webhooks (one prefix test away) and the customer's pages
    # (resolving the payment page after every other app's patterns was a tenth of its server time, bench/page.py).
    path("webhooks/", include("webhooks.urls")),
    path("", include("payments.urls")),
    path("", include("refunds.urls")),  # before the admin: the Refund page lives under /admin/billing/balance/
    path("admin/finance/", include("finance.urls")),  # before the admin's catch-all app_label pattern
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("billing.urls")),
    path("", include("receipts.urls")),
]

if settings.BENCH_BASELINE:
    from bench.baseline import baseline_ingest

    urlpatterns.append(path("bench/baseline/", baseline_ingest, name="bench-baseline"))
