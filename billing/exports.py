"""Exports of an admin list as CSV or XLSX: exactly the rows of the changelist's current filter (its filters, search
and date hierarchy) in its order, streamed so that a million rows never sit in memory.

One mechanism for every books list (balances, invoices, payment entries, refund requests, payouts, and lists of
apps above billing): an admin adds `ExportMixin` and names its columns in `export_columns`. Columns are explicit
lookups read with `values_list` (no model instance per row), so nothing that is not listed, such as a secret or
a raw payload, can reach a file.

Amounts: CSV gets plain digits with the currency's decimal places (text, exactly what the books hold). XLSX gets a
number cell written from the Decimal's own digits (openpyxl writes `str(Decimal)` into the sheet, never a float of
ours) with the currency's number format, so a clerk can sum a column; a spreadsheet holds 15 significant digits,
which is every amount below 10^12 exactly.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.urls import path
from django.utils import timezone

from billing.money import MoneyError, display_places, quantize

CHUNK_SIZE = 2000
# A spreadsheet runs a cell starting with one of these as a formula; text from Stripe, customers or the books must not.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    """One column of an export: its header, the queryset lookup it reads, and for an amount the lookup of its currency."""

    header: str
    lookup: str
    currency: str | None = None


def amount_column(header: str = "amount", lookup: str = "amount", currency: str = "currency") -> Column:
    return Column(header, lookup, currency)


def safe_text(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _places(currency: str | None) -> int | None:
    try:
        return display_places(currency) if currency else None
    except MoneyError:
        return None


def _amount_text(value: Decimal | None, currency: str | None) -> str:
    if value is None:
        return ""
    return str(quantize(value, currency)) if _places(currency) is not None else str(value)


class _Table:
    """The columns of an export and how each value of a `values_list` row becomes a cell."""

    def __init__(self, columns: list[Column]):
        self.columns = columns
        lookups = list(dict.fromkeys([c.lookup for c in columns] + [c.currency for c in columns if c.currency]))
        self.lookups = lookups
        self.value_at = [lookups.index(c.lookup) for c in columns]
        self.currency_at = [lookups.index(c.currency) if c.currency else None for c in columns]

    def rows(self, queryset) -> Iterator[tuple]:
        return queryset.values_list(*self.lookups).iterator(chunk_size=CHUNK_SIZE)

    def csv_row(self, row: tuple) -> list[str]:
        cells = []
        for value_at, currency_at in zip(self.value_at, self.currency_at, strict=True):
            value = row[value_at]
            if currency_at is not None:
                cells.append(_amount_text(value, row[currency_at]))
            elif isinstance(value, bool):
                cells.append(str(value).lower())
            elif isinstance(value, datetime | date):
                cells.append(value.isoformat())
            elif isinstance(value, int | Decimal) or value is None:
                cells.append("" if value is None else str(value))
            else:
                cells.append(safe_text(value))
        return cells


class _Echo:
    """csv.writer writes each row to this and gets the text back (Django's streaming CSV pattern)."""

    def write(self, value: str) -> str:
        return value


def csv_chunks(rows: Iterable[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


def csv_response(columns: list[Column], queryset, filename: str) -> StreamingHttpResponse:
    table = _Table(columns)

    def lines():
        yield [c.header for c in columns]
        for row in table.rows(queryset):
            yield table.csv_row(row)

    response = StreamingHttpResponse(csv_chunks(lines()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def _xlsx_text(value) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", safe_text(value))


def xlsx_response(columns: list[Column], queryset, filename: str, title: str) -> FileResponse:
    """The rows written one by one into openpyxl's write-only workbook (it keeps them in a temporary file, not in
    memory), saved into an anonymous temporary file that the response streams and then closes."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    table = _Table(columns)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.append([c.header for c in columns])
    formats: dict[str | None, str] = {}
    current = timezone.get_current_timezone()
    for row in table.rows(queryset):
        cells = []
        for value_at, currency_at in zip(table.value_at, table.currency_at, strict=True):
            value = row[value_at]
            if currency_at is not None and value is not None:
                currency = row[currency_at]
                if currency not in formats:
                    places = _places(currency)
                    formats[currency] = "0" if not places else "0." + "0" * places
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = formats[currency]
                cells.append(cell)
            elif isinstance(value, datetime):
                # Spreadsheets have no time zones: the local time of the site's zone (settings.TIME_ZONE).
                cells.append(timezone.localtime(value, current).replace(tzinfo=None) if timezone.is_aware(value) else value)
            elif isinstance(value, bool | int | Decimal | date) or value is None:
                cells.append(value)
            else:
                cells.append(_xlsx_text(value))
        sheet.append(cells)
    spool = tempfile.TemporaryFile()
    workbook.save(spool)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=f"{filename}.xlsx",
                        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


class ExportMixin:
    """Adds "Export CSV" and "Export XLSX" to an admin changelist: the list's current filter, search and order, in the
    columns of `export_columns`. Needs the model's view permission."""

    export_columns: list[Column] = []
    change_list_template = "admin/billing/export_change_list.html"

    def get_urls(self):
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        view = self.admin_site.admin_view
        return [path("export/csv/", view(self.export_csv_view), name=f"{prefix}_export_csv"),
                path("export/xlsx/", view(self.export_xlsx_view), name=f"{prefix}_export_xlsx"),
                *super().get_urls()]

    def export_queryset(self, request):
        """The changelist's own queryset for this request: its filters, search, date hierarchy and ordering."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return self.get_changelist_instance(request).queryset

    def export_filename(self) -> str:
        return f"{self.model._meta.verbose_name_plural}-{timezone.localdate().isoformat()}".replace(" ", "-")

    def export_csv_view(self, request):
        try:
            queryset = self.export_queryset(request)
        except IncorrectLookupParameters:
            return HttpResponse("This list cannot be filtered like that.", status=400, content_type="text/plain")
        return csv_response(self.export_columns, queryset, self.export_filename())

    def export_xlsx_view(self, request):
        try:
            queryset = self.export_queryset(request)
        except IncorrectLookupParameters:
            return HttpResponse("This list cannot be filtered like that.", status=400, content_type="text/plain")
        return xlsx_response(self.export_columns, queryset, self.export_filename(), str(self.model._meta.verbose_name_plural))
