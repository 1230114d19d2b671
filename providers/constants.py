"""What the Stripe Dashboard must be told about each webhook endpoint."""

# The events to select for the endpoint (SPEC §5). Handlers may only be registered for these.
WEBHOOK_EVENTS = (
    "source.chargeable",
    "charge.pending",
    "charge.succeeded",
    "charge.failed",
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.canceled",
    "setup_intent.succeeded",
    "payment_method.detached",
    "payment_method.automatically_updated",
    "charge.dispute.created",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "charge.dispute.closed",
    "charge.dispute.updated",
    "charge.captured",
    "charge.expired",
)
