"""What the resource pages share: list tables, form submission through a service, lookups."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django_tables2 import RequestConfig

from config.errors import GantryError
from frontend.form_errors import apply_service_error

PER_PAGE = 25


def table_page(request, filterset_class, rows, table_class, caption: str):
    """(filterset, table) for a list page: the API's FilterSet filters ``rows``, the table
    sorts (``?sort=``) and paginates (``?page=``) them. Invalid filters show no rows."""
    filterset = filterset_class(request.GET, queryset=rows)
    filterset.form.auto_id = "filter_%s"  # ids apart from a form on the same page
    shown = filterset.qs if filterset.is_valid() else rows.none()
    table = table_class(shown)
    table.caption = caption
    RequestConfig(request, paginate={"per_page": PER_PAGE}).configure(table)
    return filterset, table


def posted(request):
    """The submitted data of a POST (even an empty one), else None (an unbound form)."""
    return request.POST if request.method == "POST" else None


def submit(request, form, fields: dict[str, str], write, done: str, success_url,
           conflict_field: str | None = None):  # fmt: skip
    """Calls ``write()`` (which calls one service) if the request is a POST. On success: the
    ``done`` message and a redirect to ``success_url`` (a URL, or a function of what
    ``write`` returned). On a service error: None, with the error shown on ``form``."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        result = write()
    except GantryError as error:
        apply_service_error(form, error, fields, conflict_field)
        return None
    messages.success(request, done)
    return redirect(success_url(result) if callable(success_url) else success_url)


def render_form(request, template: str, context: dict):
    """A form page; 400 when the form shows errors (nothing was saved)."""
    form = context.get("form")
    status = 400 if form is not None and form.errors else 200
    return render(request, template, context, status=status)


def version(raw: str | None) -> int | None:
    """The resourceVersion a form was rendered with (the same rule as the API's)."""
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else None
