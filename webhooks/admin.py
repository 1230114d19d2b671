"""Admin for the webhook inbox: status, type, age, attempts, error, payload; replay selected events."""

import json

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.timesince import timesince

from webhooks.models import WebhookEvent
from webhooks.services import replay_events


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("stripe_event_id", "type", "status", "age", "attempts", "short_error", "provider_setting", "livemode")
    list_filter = ("status", "type", "livemode", "provider_setting")
    search_fields = ("stripe_event_id", "type")
    date_hierarchy = "received_at"
    actions = ["replay"]
    readonly_fields = [field.name for field in WebhookEvent._meta.fields if field.name != "payload"] + ["pretty_payload"]
    exclude = ("payload",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="age")
    def age(self, obj):
        return timesince(obj.received_at)

    @admin.display(description="last error")
    def short_error(self, obj):
        return (obj.last_error or "")[:80]

    @admin.display(description="payload")
    def pretty_payload(self, obj):
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(obj.event, indent=2, sort_keys=True))

    def has_replay_permission(self, request):
        # Events are read-only in the admin (no change form), but replaying them needs the change permission.
        return request.user.has_perm("webhooks.change_webhookevent")

    @admin.action(description="Replay selected events", permissions=["replay"])
    def replay(self, request, queryset):
        count = replay_events(queryset.values_list("id", flat=True), user=request.user)
        self.message_user(request, f"{count} event(s) queued for processing again.", messages.SUCCESS)
