from django.db import models


class TransactionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    DISPUTED = "disputed", "Disputed"


class AttemptStatus(models.TextChoices):
    CREATED = "created", "Created"  # PaymentIntent exists, the customer has not confirmed yet
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


IN_FLIGHT_ATTEMPT_STATUSES = (AttemptStatus.CREATED, AttemptStatus.PROCESSING)


class AttemptSource(models.TextChoices):
    PAGE = "page", "Hosted payment page"
    OFF_SESSION = "off_session", "Off-session collection"


class MethodType(models.TextChoices):
    CARD = "card", "Card"
    SEPA_DEBIT = "sepa_debit", "SEPA Direct Debit"
    ALIPAY = "alipay", "Alipay"
    OTHER = "other", "Other"
