"""Celery tasks of disputes (on the documents queue): thin, they load ids and call services."""

from celery import shared_task

from disputes import services


@shared_task(name="disputes.tasks.send_dispute_email", acks_late=True)
def send_dispute_email(email_id: int):
    return services.send_dispute_email(email_id=email_id)


@shared_task(name="disputes.tasks.sweep_dispute_emails")
def sweep_dispute_emails():
    """Beat: the dispute emails a lost task or a failed send left unsent."""
    return services.send_unsent_dispute_emails()
