from django.urls import include, path
from rest_framework.routers import DefaultRouter

from billing.api import AssignBalanceView, BalanceViewSet, InvoiceViewSet, PaymentEntryViewSet, ResolvePaymentEntryView

app_name = "billing"
router = DefaultRouter()
router.register("invoices", InvoiceViewSet)
router.register("balances", BalanceViewSet)
router.register("payment-entries", PaymentEntryViewSet)

urlpatterns = [
    path("balances/<int:balance_id>/assign/", AssignBalanceView.as_view(), name="assign-balance"),
    path("payment-entries/<int:entry_id>/resolve/", ResolvePaymentEntryView.as_view(), name="resolve-entry"),
    path("", include(router.urls)),
]
