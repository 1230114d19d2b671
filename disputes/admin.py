"""The disputes finance answers: listed soonest evidence due first (overdue marked), accepted or answered with evidence.

The one DisputeAdmin (payments' Dispute rows, written by the ledger's events and by the services here). Its pages are
read-only; the actions are pages of their own, open to staff with the change permission on disputes.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from billing.admin import ReadOnly
from billing.admin_money import money, money_column
from disputes import selectors, services
from disputes.models import DisputeEmail
from payments.models import Dispute

ANSWER_PERMISSION = "payments.change_dispute"
MAX_TEXT = 20000


class EvidenceForm(forms.Form):
    customer_name = forms.CharField(max_length=200)
    customer_email_address = forms.EmailField(required=False, label="Customer email address")
    product_description = forms.CharField(max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 4, "cols": 80}))
    service_date = forms.DateField(required=False, help_text="The day the service was provided (YYYY-MM-DD).")
    uncategorized_text = forms.CharField(max_length=MAX_TEXT, required=False, label="Further explanation",
                                         widget=forms.Textarea(attrs={"rows": 6, "cols": 80}))


class EvidenceDueFilter(admin.SimpleListFilter):
    title = "evidence due"
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return (("overdue", "Overdue"), ("week", "Due within 7 days"), ("open", "Waiting for an answer"), ("answered", "Answered"))

    def queryset(self, request, queryset):
        now = timezone.now()
        waiting = Q(status__in=selectors.ANSWERABLE_STATUSES)
        if self.value() == "overdue":
            return queryset.filter(waiting & (Q(evidence_past_due=True) | Q(evidence_due_by__lte=now)))
        if self.value() == "week":
            return queryset.filter(waiting, evidence_past_due=False, evidence_due_by__gt=now,
                                   evidence_due_by__lte=now + timedelta(days=7))
        if self.value() == "open":
            return queryset.filter(waiting)
        if self.value() == "answered":
            return queryset.exclude(waiting)
        return queryset


class DisputeEmailInline(ReadOnly, admin.TabularInline):
    model = DisputeEmail
    fields = readonly_fields = ("recipient", "sent_at", "attempts", "last_error")
    can_delete = False
    extra = 0


@admin.register(Dispute)
class DisputeAdmin(ReadOnly, admin.ModelAdmin):
    """Written by Stripe's events and the actions below only."""

    list_display = ("dispute_id", "amount_display", "reason", "status", "due_display", "evidence_display", "invoice_link",
                    "balances_link")
    list_filter = (EvidenceDueFilter, "status", "reason", "currency", "provider_setting")
    search_fields = ("dispute_id", "transaction__charge_id", "transaction__invoice__number", "transaction__account__name")
    ordering = (F("evidence_due_by").asc(nulls_last=True), "id")
    list_select_related = ("transaction__invoice", "transaction__account")
    inlines = [DisputeEmailInline]
    change_form_template = "admin/disputes/change_form.html"

    amount_display = money_column("amount")

    @admin.display(description="evidence due", ordering=F("evidence_due_by").asc(nulls_last=True))
    def due_display(self, obj):
        if obj.evidence_due_by is None:
            return "-"
        due = timezone.localtime(obj.evidence_due_by).strftime("%Y-%m-%d %H:%M")
        if selectors.is_overdue(obj):
            return format_html('<strong class="overdue" style="color:#ba2121">{} (overdue)</strong>', due)
        return due

    @admin.display(description="evidence")
    def evidence_display(self, obj):
        if obj.evidence_submitted_at:
            return f"submitted {timezone.localtime(obj.evidence_submitted_at):%Y-%m-%d}"
        if obj.evidence_submission_count:
            return f"submitted ({obj.evidence_submission_count}×)"
        return "given, not submitted" if obj.has_evidence else "-"

    @admin.display(description="invoice")
    def invoice_link(self, obj):
        invoice = obj.transaction.invoice
        if invoice is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:billing_invoice_change", args=[invoice.pk]), invoice.number)

    @admin.display(description="balances")
    def balances_link(self, obj):
        url = reverse("admin:billing_balance_changelist") + "?" + urlencode({"q": obj.transaction.charge_id})
        return format_html('<a href="{}">{}</a>', url, obj.transaction.charge_id)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The dispute's page offers the actions it still allows to those who may answer."""
        dispute = self.get_object(request, object_id)
        extra = {}
        if dispute is not None:
            may_answer = request.user.has_perm(ANSWER_PERMISSION)
            extra = {
                "overdue": selectors.is_overdue(dispute),
                "accept_url": reverse("admin:disputes_accept", args=[dispute.pk]) if may_answer and selectors.can_accept(dispute) else "",
                "submit_evidence_url": reverse("admin:disputes_submit_evidence", args=[dispute.pk])
                if may_answer and selectors.can_submit_evidence(dispute) else "",
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_list_display(self, request):
        """The answer column only for those who may answer, with the actions each dispute still allows."""
        if not request.user.has_perm(ANSWER_PERMISSION):
            return self.list_display

        @admin.display(description="answer")
        def answer_links(obj):
            links = []
            if selectors.can_submit_evidence(obj):
                links.append(format_html('<a class="button" href="{}">Submit evidence</a>',
                                         reverse("admin:disputes_submit_evidence", args=[obj.pk])))
            if selectors.can_accept(obj):
                links.append(format_html('<a class="button" href="{}">Accept dispute</a>', reverse("admin:disputes_accept", args=[obj.pk])))
            return format_html_join(" ", "{}", ((link,) for link in links)) if links else "-"

        return (*self.list_display, answer_links)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/accept/", view(self.accept_view), name="disputes_accept"),
            path("<int:pk>/evidence/", view(self.submit_evidence_view), name="disputes_submit_evidence"),
        ] + super().get_urls()

    def _dispute(self, request, pk: int) -> Dispute:
        if not request.user.has_perm(ANSWER_PERMISSION):
            raise PermissionDenied
        dispute = selectors.disputes_for_finance().filter(pk=pk).first()
        if dispute is None:
            raise Http404("No such dispute.")
        return dispute

    def _page(self, request, dispute, template: str, **context):
        return render(request, template, {**self.admin_site.each_context(request), "opts": self.model._meta, "original": dispute,
                                          "dispute": dispute, "amount": money(dispute.amount, dispute.currency),
                                          "overdue": selectors.is_overdue(dispute), "has_view_permission": True, **context})

    def _back(self):
        return HttpResponseRedirect(reverse("admin:payments_dispute_changelist"))

    def accept_view(self, request, pk: int):
        dispute = self._dispute(request, pk)
        if not selectors.can_accept(dispute):
            status = dispute.get_status_display().lower()
            messages.error(request, f"Dispute {dispute.dispute_id} is {status}: it can no longer be accepted.")
            return self._back()
        if request.method == "POST":
            try:
                dispute = services.accept_dispute(dispute, accepted_by=request.user.get_username())
            except services.DisputeActionError as exc:
                messages.error(request, str(exc))
                return self._back()
            messages.success(request, f"Dispute {dispute.dispute_id} accepted: Stripe closed it as {dispute.get_status_display().lower()}. "
                                      "The money is taken back in the books when Stripe's event arrives.")
            return self._back()
        return self._page(request, dispute, "admin/disputes/accept.html", title=f"Accept dispute {dispute.dispute_id}?")

    def submit_evidence_view(self, request, pk: int):
        dispute = self._dispute(request, pk)
        if not selectors.can_submit_evidence(dispute):
            reason = "its evidence was due" if selectors.is_overdue(dispute) else f"it is {dispute.get_status_display().lower()}"
            messages.error(request, f"Dispute {dispute.dispute_id} takes no evidence now: {reason}.")
            return self._back()
        if request.method == "POST":
            form = EvidenceForm(request.POST)
            if form.is_valid():
                try:
                    dispute = services.submit_evidence(dispute, submitted_by=request.user.get_username(), **form.cleaned_data)
                except services.DisputeActionError as exc:
                    messages.error(request, str(exc))
                else:
                    messages.success(request, f"Evidence for dispute {dispute.dispute_id} submitted: Stripe has it "
                                              f"{dispute.get_status_display().lower()}.")
                    return self._back()
        else:
            form = EvidenceForm(initial=selectors.evidence_defaults(dispute))
        return self._page(request, dispute, "admin/disputes/submit_evidence.html", form=form,
                          title=f"Submit evidence for dispute {dispute.dispute_id}",
                          documents=["the charge's receipt (PDF)", "the invoice (PDF)"] if dispute.transaction.invoice_id else [])

