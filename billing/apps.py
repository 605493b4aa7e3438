from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Prices, metering, invoices and usage reports (to come)."""

    name = "billing"
    verbose_name = "Billing"
