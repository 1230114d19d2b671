"""factory-boy factories shared by every test package."""

from datetime import date, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from billing.constants import BalanceType, InvoiceKind, InvoiceStatus
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


class BalanceFactory(factory.django.DjangoModelFactory):
    """A confirmed payment balance of -100.00 EUR for a new invoice."""

    class Meta:
        model = Balance

    invoice = factory.SubFactory(InvoiceFactory)
    account = factory.LazyAttribute(lambda o: o.invoice.account if o.invoice else AccountFactory())
    type = BalanceType.PAYMENT
    amount = Decimal("-100.00")
    currency = "EUR"
    date = factory.LazyFunction(timezone.now)
    transaction_number = factory.Sequence(lambda n: f"ch_test{n:010d}")


class PaymentEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentEntry

    transaction_number = factory.Sequence(lambda n: f"ch_entry{n:010d}")
    amount = Decimal("-100.00")
    currency = "EUR"
