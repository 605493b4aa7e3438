"""The operators' admin for billing: price books (written through ``set_price_book``, checked
and audited like the API's writes) and invoices (read-only: they are final)."""

from django.contrib import admin

from billing import prices
from billing.models import Invoice, InvoiceLine, PriceBook
from billing.money import plain
from config.errors import ValidationFailed
from tenants.admin_base import ServiceAdmin
from tenants.audit import Actor


def _price_book_json(data: dict) -> dict:
    """The admin form's fields in the API's shape, for the one validation in ``prices``."""

    def number(value):
        return plain(value) if value is not None else None

    return {
        "currency": data.get("currency"),
        "replicaHour": data.get("replica_hour"),
        "perMillionRequests": number(data.get("per_million_requests")),
        "perGbSent": number(data.get("per_gb_sent")),
        "included": {
            "requests": data.get("included_requests"),
            "gbSent": number(data.get("included_gb_sent")),
            "replicaHours": number(data.get("included_replica_hours")),
        },
    }


@admin.register(PriceBook)
class PriceBookAdmin(ServiceAdmin):
    list_display = ["plan", "currency", "per_million_requests", "per_gb_sent", "updated_at"]
    fields = [
        "plan", "currency", "replica_hour", "per_million_requests", "per_gb_sent",
        "included_requests", "included_gb_sent", "included_replica_hours", "updated_at",
    ]  # fmt: skip
    readonly_fields = ["updated_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["plan", "updated_at"] if obj else ["updated_at"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        class Checked(form):
            def clean(self):
                data = super().clean()
                try:
                    prices.parse(_price_book_json(data))
                except ValidationFailed as error:
                    for problem in error.fields:
                        self.add_error(None, f"{problem.path}: {problem.message}")
                return data

        return Checked

    def save_model(self, request, obj, form, change):
        plan = obj.plan
        saved = prices.set_price_book(
            Actor.from_request(request), plan, _price_book_json(form.cleaned_data)
        )
        obj.pk, obj._state.adding = saved.pk, False

    def service_delete(self, actor, obj):
        from config.errors import Conflict

        raise Conflict("price books are not deleted: the plan's invoices need them; edit it")


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    fields = ["position", "description", "quantity", "unit", "unit_price", "amount"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Final invoices, read only."""

    list_display = ["number", "tenant_slug", "period_start", "currency", "total", "issued_at"]
    search_fields = ["number", "tenant_slug"]
    inlines = [InvoiceLineInline]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Invoice._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
