from celery import shared_task

from refunds.services import finish_pending_refund_requests as finish_pending


@shared_task(name="refunds.tasks.finish_pending_refund_requests")
def finish_pending_refund_requests():
    return finish_pending()
