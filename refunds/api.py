"""POST /api/balances/<id>/refund/: the Refund button for integrators (same service, same rules)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Balance
from refunds.services import OverrefundNotConfirmed, RefundError, refund_payment_balance


class CanRefund(permissions.BasePermission):
    """As the admin's Refund button: staff AND the refund permission."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_staff and request.user.has_perm("refunds.add_refundrequest"))


class RefundInputSerializer(serializers.Serializer):
    amount = serializers.CharField(max_length=32, help_text='Decimal string in the balance currency, e.g. "25.00".')
    confirm_overrefund = serializers.BooleanField(default=False)


class RefundBalanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Balance
        fields = ["id", "type", "amount", "currency", "invoice", "transaction_number", "locked", "lock_reason", "split_from",
                  "refunds_balance", "stripe_refund_id", "is_overrefund", "date"]


class RefundResultSerializer(serializers.Serializer):
    refund_request_id = serializers.IntegerField()
    stripe_refund_id = serializers.CharField()
    status = serializers.CharField()
    refund_balances = RefundBalanceSerializer(many=True)
    payment_balances = RefundBalanceSerializer(many=True)


class RefundBalanceView(APIView):
    permission_classes = [CanRefund]

    @extend_schema(request=RefundInputSerializer, responses={201: RefundResultSerializer, 400: OpenApiResponse(description="reason"),
                                                             503: OpenApiResponse(description="Stripe unavailable")},
                   description="Refund part or all of a payment through Stripe. An `Idempotency-Key` header makes retries safe.")
    def post(self, request, balance_id):
        balance = get_object_or_404(Balance, pk=balance_id)
        data = RefundInputSerializer(data=request.data)
        if not data.is_valid():
            return Response({"detail": "Give the refund amount as a decimal string.", "errors": data.errors}, status=400)
        try:
            result = refund_payment_balance(balance, amount=data.validated_data["amount"], requested_by=request.user,
                                            confirm_overrefund=data.validated_data["confirm_overrefund"],
                                            idempotency_key=request.headers.get("Idempotency-Key") or None)
        except OverrefundNotConfirmed as exc:
            return Response({"detail": str(exc), "code": "overrefund_not_confirmed"}, status=400)
        except RefundError as exc:
            unavailable = "checked with Stripe again" in str(exc)
            return Response({"detail": str(exc)}, status=503 if unavailable else 400)
        body = {"refund_request_id": result.request.pk, "stripe_refund_id": result.request.stripe_refund_id or "",
                "status": result.request.status, "refund_balances": RefundBalanceSerializer(result.refund_balances, many=True).data,
                "payment_balances": RefundBalanceSerializer(result.payment_balances, many=True).data}
        return Response(body, status=status.HTTP_201_CREATED)
