from celery import shared_task

from payments.services.collection import collect_due_invoices as collect


@shared_task(name="payments.tasks.collect_due_invoices")
def collect_due_invoices():
    return collect()
