"""A price book for each default plan (billing/default_prices.py), so invoices work out of the
box. Plans an operator removed are skipped; existing price books are left as they are."""

from django.db import migrations


def create(apps, schema_editor):
    from billing.default_prices import DEFAULT_PRICES
    from billing.prices import parse

    Plan = apps.get_model("tenants", "Plan")
    PriceBook = apps.get_model("billing", "PriceBook")
    for name, prices in DEFAULT_PRICES.items():
        plan = Plan.objects.filter(name=name).first()
        if plan is not None and not PriceBook.objects.filter(plan=plan).exists():
            PriceBook.objects.create(plan=plan, **parse(prices))


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_prices_invoices_budgets"),
        ("tenants", "0002_default_plans"),
    ]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
