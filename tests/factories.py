"""factory-boy factories shared by every test package."""

from datetime import date, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from billing.constants import MONEY_RECEIVED_KINDS, BalanceType, InvoiceKind, InvoiceStatus, PaymentEntryKind
from billing.models import Account, Balance, BusinessEntity, Invoice, PaymentEntry
from providers.models import ProviderSetting

TEST_SECRET_KEY = "sk_test_FAKE0123456789abcdefABCDEF"
TEST_PUBLISHABLE_KEY = "pk_test_FAKE0123456789abcdefABCDEF"
TEST_WEBHOOK_SECRET = "whsec_FAKEtestonly_0123456789"


class BusinessEntityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessEntity

    name = factory.Sequence(lambda n: f"Entity {n}")
    slug = factory.Sequence(lambda n: f"entity-{n}")
    display_name = factory.LazyAttribute(lambda o: f"{o.name} GmbH")
    support_email = "support@example.com"
    default_currency = "EUR"


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    business_entity = factory.SubFactory(BusinessEntityFactory)
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")


class InvoiceFactory(factory.django.DjangoModelFactory):
    """An open (finalized) invoice of 100.00 EUR by default."""

    class Meta:
        model = Invoice

    number = factory.Sequence(lambda n: f"INV-{n:05d}")
    account = factory.SubFactory(AccountFactory)
    business_entity = factory.LazyAttribute(lambda o: o.account.business_entity)
    kind = InvoiceKind.INVOICE
    amount = Decimal("100.00")
    currency = "EUR"
    payment_reference = factory.LazyAttribute(lambda o: f"Invoice {o.number}")
    due_date = factory.LazyFunction(lambda: date.today() + timedelta(days=14))
    status = InvoiceStatus.OPEN
    finalized_at = factory.LazyFunction(timezone.now)


class CreditNoteFactory(InvoiceFactory):
    number = factory.Sequence(lambda n: f"CRN-{n:05d}")
    kind = InvoiceKind.CREDIT
    amount = Decimal("-20.00")


class ProviderSettingFactory(factory.django.DjangoModelFactory):
    """An active default (no entity) Stripe test setting with card enabled."""

    class Meta:
        model = ProviderSetting
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Stripe setting {n}")
    active = True
    publishable_key = TEST_PUBLISHABLE_KEY
    stripe_account_id = factory.Sequence(lambda n: f"acct_test{n:08d}")
    method_card = True

    @factory.post_generation
    def secrets(obj, create, extracted, **kwargs):  # noqa: N805
        obj.secret_key = kwargs.get("secret_key", TEST_SECRET_KEY)
        obj.webhook_secret = kwargs.get("webhook_secret", TEST_WEBHOOK_SECRET)
        if create:
            obj.save()

    @factory.post_generation
    def business_entities(obj, create, extracted, **kwargs):  # noqa: N805
        if create and extracted:
            obj.business_entities.set(extracted)


def charge_holds(*, charge_id: str, setting_id: int, amount, currency: str, pending: bool = False, invoice_id=None, account_id=None):
    """The charge's transaction, as its webhooks would have left it, holding `amount` more (SPEC §11 invariant 4: a
    charge's balances and entries hold exactly its money)."""
    from django.db.models import F

    from payments.models import PaymentTransaction

    tx, created = PaymentTransaction.objects.get_or_create(
        charge_id=charge_id,
        defaults={"provider_setting_id": setting_id, "amount": amount, "currency": currency,
                  "status": "pending" if pending else "succeeded", "booked_at": timezone.now(), "invoice_id": invoice_id,
                  "account_id": account_id})
    if not created:
        PaymentTransaction.objects.filter(pk=tx.pk).update(amount=F("amount") + amount)


class BalanceFactory(factory.django.DjangoModelFactory):
    """A confirmed payment balance of -100.00 EUR for a new invoice."""

    class Meta:
        model = Balance
        skip_postgeneration_save = True

    invoice = factory.SubFactory(InvoiceFactory)
    account = factory.LazyAttribute(lambda o: o.invoice.account if o.invoice else AccountFactory())
    type = BalanceType.PAYMENT
    amount = Decimal("-100.00")
    currency = "EUR"
    date = factory.LazyFunction(timezone.now)
    transaction_number = factory.Sequence(lambda n: f"ch_test{n:010d}")

    @factory.post_generation
    def charge(obj, create, extracted, **kwargs):  # noqa: N805
        """A Stripe payment balance's charge has its transaction, holding what its balances hold (SPEC §11 invariant 4),
        as the webhooks would have left it (`charge=False`: it has none)."""
        stripe_payment = obj.provider_setting_id and obj.type == BalanceType.PAYMENT and not obj.is_overrefund \
            and obj.transaction_number.startswith(("ch_", "py_"))
        if create and stripe_payment and extracted is not False:
            charge_holds(charge_id=obj.transaction_number, setting_id=obj.provider_setting_id, amount=-obj.amount, currency=obj.currency,
                         pending=obj.status == "pending", invoice_id=obj.invoice_id, account_id=obj.account_id)

    @factory.post_generation
    def recompute_status(obj, create, extracted, **kwargs):  # noqa: N805
        """The invoice's status follows the new balance, as the ledger keeps it (`recompute_status=False`: it does not)."""
        if create and obj.invoice_id and extracted is not False:
            from billing.ledger import recompute_invoices

            recompute_invoices([obj.invoice_id])


class PaymentEntryFactory(factory.django.DjangoModelFactory):
    """An open entry of 100.00 EUR received for no matching invoice."""

    kind = PaymentEntryKind.UNMATCHED_PAYMENT
    transaction_number = factory.Sequence(lambda n: f"ch_entry{n:010d}")
    amount = Decimal("-100.00")
    currency = "EUR"

    class Meta:
        model = PaymentEntry
        skip_postgeneration_save = True

    @factory.post_generation
    def charge(obj, create, extracted, **kwargs):  # noqa: N805
        """An open entry of a Stripe charge's money has the charge's transaction holding it (`charge=False`: none)."""
        held = obj.provider_setting_id and obj.kind in MONEY_RECEIVED_KINDS and obj.parent_id is None and obj.amount < 0 \
            and obj.status == "open"
        if create and held and extracted is not False:
            charge_holds(charge_id=obj.transaction_number, setting_id=obj.provider_setting_id, amount=-obj.amount, currency=obj.currency,
                         pending=obj.payment_status == "pending")


class PaymentTransactionFactory(factory.django.DjangoModelFactory):
    """A succeeded, booked charge of 100.00 EUR (its balances are the test's to create)."""

    class Meta:
        model = "payments.PaymentTransaction"

    charge_id = factory.Sequence(lambda n: f"ch_tx{n:010d}")
    provider_setting = factory.SubFactory(ProviderSettingFactory)
    amount = Decimal("100.00")
    currency = "EUR"
    method_type = "card"
    status = "succeeded"
    booked_at = factory.LazyFunction(timezone.now)
