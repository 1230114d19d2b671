"""Read API of the books (invoices, balances, payment entries) and the assignment endpoints."""

from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import ledger
from billing.models import Balance, Invoice, PaymentEntry
from billing.selectors import open_amount


class InvoiceSerializer(serializers.ModelSerializer):
    open_amount = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = ["id", "number", "kind", "account", "business_entity", "amount", "currency", "open_amount", "status",
                  "payment_reference", "due_date", "finalized_at"]

    def get_open_amount(self, invoice) -> str:
        return str(open_amount(invoice))


class BalanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Balance
        fields = ["id", "account", "invoice", "type", "amount", "currency", "date", "transaction_number", "provider_setting",
                  "locked", "lock_reason", "split_from", "refunds_balance", "stripe_refund_id", "is_overrefund", "status"]


class PaymentEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = PaymentEntry
        fields = ["id", "provider", "kind", "transaction_number", "stripe_refund_id", "amount", "currency", "date", "last_error",
                  "status", "account", "invoice", "resolved_balance", "created_at"]


class BalanceFilter(filters.FilterSet):
    class Meta:
        model = Balance
        fields = ["transaction_number", "account", "invoice", "type", "locked", "status", "currency"]


class InvoiceViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Invoice.objects.all().order_by("id")
    serializer_class = InvoiceSerializer
    filterset_fields = ["account", "status", "kind", "currency", "number"]


class BalanceViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Balance.objects.all().order_by("date", "id")
    serializer_class = BalanceSerializer
    filterset_class = BalanceFilter


class PaymentEntryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = PaymentEntry.objects.all().order_by("-id")
    serializer_class = PaymentEntrySerializer
    filterset_fields = ["status", "kind", "transaction_number"]


class CanChangeBalances(permissions.BasePermission):
    def has_permission(self, request, view):
        return bool(request.user and request.user.is_staff and request.user.has_perm("billing.change_balance"))


class AssignInputSerializer(serializers.Serializer):
    document = serializers.IntegerField(help_text="id of the invoice or credit note")
    amount = serializers.DecimalField(max_digits=18, decimal_places=3, required=False, allow_null=True)


class AssignBalanceView(APIView):
    permission_classes = [CanChangeBalances]

    @extend_schema(request=AssignInputSerializer, responses={200: BalanceSerializer, 400: OpenApiResponse(description="reason")})
    def post(self, request, balance_id):
        balance = get_object_or_404(Balance, pk=balance_id)
        data = AssignInputSerializer(data=request.data)
        if not data.is_valid():
            return Response({"detail": "Give the document id (and optionally an amount).", "errors": data.errors}, status=400)
        document = Invoice.objects.filter(pk=data.validated_data["document"]).first()
        if document is None:
            return Response({"detail": "No such invoice or credit note."}, status=400)
        try:
            assigned = ledger.assign_balance(balance, document=document, amount=data.validated_data.get("amount"), user=request.user)
        except ledger.BillingError as exc:
            return Response({"detail": str(exc)}, status=400)
        return Response(BalanceSerializer(assigned).data)


class ResolveEntryInputSerializer(serializers.Serializer):
    invoice = serializers.IntegerField(required=False, allow_null=True)
    account = serializers.IntegerField(required=False, allow_null=True)


class ResolvePaymentEntryView(APIView):
    permission_classes = [CanChangeBalances]

    @extend_schema(request=ResolveEntryInputSerializer, responses={200: BalanceSerializer, 400: OpenApiResponse(description="reason")})
    def post(self, request, entry_id):
        from billing.models import Account

        entry = get_object_or_404(PaymentEntry, pk=entry_id)
        data = ResolveEntryInputSerializer(data=request.data)
        if not data.is_valid():
            return Response({"detail": "Invalid input.", "errors": data.errors}, status=400)
        invoice = Invoice.objects.filter(pk=data.validated_data.get("invoice") or 0).first()
        account = Account.objects.filter(pk=data.validated_data.get("account") or 0).first()
        try:
            balance = ledger.resolve_payment_entry(entry, invoice=invoice, account=account, user=request.user)
        except ledger.BillingError as exc:
            return Response({"detail": str(exc)}, status=400)
        return Response(BalanceSerializer(balance).data)
