"""The finance dashboard page in the admin (SPEC §13): thin, the figures come from finance.selectors."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from billing.money import display_places, quantize
from finance import selectors
from finance.forms import DashboardForm

PERMISSION = "billing.view_balance"
# The page runs only our own static scripts (Chart.js vendored, dashboard.js); its data comes in json_script blocks.
CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; " \
      "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"


def _chart_data(figures: dict, currency: str) -> dict:
    """What the charts draw: amounts as decimal strings (Chart.js plots them; the page's tables show the exact text)."""
    money = figures["money"]

    def text(value):
        return str(quantize(value, currency))

    return {"currency": currency, "places": display_places(currency),
            "days": [day.isoformat() for day in money["days"]],
            "series": {key: [text(value) for value in values] for key, values in money["series"].items()},
            "day_links": money["day_links"],
            "buckets": [bucket["label"] for bucket in figures["outstanding"]],
            "outstanding": [text(bucket["amount"]) for bucket in figures["outstanding"]],
            "bucket_links": [bucket["link"] for bucket in figures["outstanding"]]}


def dashboard_view(request):
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    form = DashboardForm(request.GET or None)
    context = {**admin.site.each_context(request), "title": "Finance dashboard", "form": form}
    status = 200
    if not request.GET or form.is_valid():
        if not request.GET:
            form = DashboardForm({})
            form.is_valid()
        data = form.cleaned_data
        entity = data["entity"]
        if entity is None:
            context["empty"] = "No business entity yet."
        else:
            currencies = selectors.currencies_of(entity)
            currency = data["currency"] or currencies[0]
            scope = selectors.scope(entity, currency, data["start"], data["end"])
            # The selectors show what is shown, defaults filled in.
            context["form"] = DashboardForm({"entity": entity.pk, "currency": currency, "start": scope.start, "end": scope.end})
            figures = selectors.dashboard(scope)
            context.update(scope=scope, figures=figures, currencies=sorted(set(currencies) | {currency}),
                           chart_data=_chart_data(figures, currency))
    else:
        status = 400
    response = TemplateResponse(request, "admin/finance/dashboard.html", context, status=status)
    response["Content-Security-Policy"] = CSP
    return response


dashboard = admin.site.admin_view(dashboard_view)
