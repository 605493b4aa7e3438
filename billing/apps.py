from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Usage rollups and reports; prices and invoices to come."""

    name = "billing"
    verbose_name = "Billing"
