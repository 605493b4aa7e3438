from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Usage rollups and reports, price books, invoices and budgets."""

    name = "billing"
    verbose_name = "Billing"
