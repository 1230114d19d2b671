from django.urls import path

from webhooks.views import stripe_webhook

app_name = "webhooks"
urlpatterns = [
    path("stripe/<uuid:webhook_id>/", stripe_webhook, name="stripe-webhook"),
]
