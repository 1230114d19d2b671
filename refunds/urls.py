from django.contrib import admin
from django.urls import path

from refunds.api import RefundBalanceView
from refunds.views import refund_balance

app_name = "refunds"
urlpatterns = [
    path("api/balances/<int:balance_id>/refund/", RefundBalanceView.as_view(), name="api-refund-balance"),
    path("admin/billing/balance/<int:balance_id>/refund/", admin.site.admin_view(refund_balance), name="refund-balance"),
]
