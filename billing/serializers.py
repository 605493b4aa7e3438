"""Shapes of the billing API's bodies, for the OpenAPI schema (the writes are validated by
``billing.prices.parse`` and ``billing.budgets.parse_amount``, the one place for each rule)."""

from rest_framework import serializers

from tenants.serializers import StrictSerializer

MONEY = {"help_text": "a decimal string with the currency's places, e.g. 12.34"}
DECIMAL = r"^[0-9]+(\.[0-9]+)?$"


class InvoiceLineSerializer(serializers.Serializer):
    description = serializers.CharField()
    quantity = serializers.CharField(help_text="a decimal string")
    unit = serializers.CharField(help_text="replica-hour, million requests or GB (10^9 bytes)")
    unitPrice = serializers.CharField(help_text="a decimal string")
    amount = serializers.CharField(**MONEY)


class InvoiceSerializer(serializers.Serializer):
    number = serializers.CharField(allow_null=True, help_text="null for the upcoming draft")
    tenant = serializers.CharField()
    status = serializers.ChoiceField(choices=["final", "draft"])
    periodStart = serializers.DateTimeField()
    periodEnd = serializers.DateTimeField(help_text="exclusive")
    currency = serializers.CharField(help_text="ISO 4217")
    lines = InvoiceLineSerializer(many=True)
    subtotal = serializers.CharField(**MONEY)
    total = serializers.CharField(**MONEY)
    issuedAt = serializers.DateTimeField(allow_null=True, help_text="null for the draft")


class IncludedSerializer(StrictSerializer):
    requests = serializers.IntegerField(min_value=0, required=False)
    gbSent = serializers.RegexField(DECIMAL, required=False, help_text="GB = 10^9 bytes")
    replicaHours = serializers.RegexField(DECIMAL, required=False)


class PriceBookSerializer(StrictSerializer):
    plan = serializers.CharField(read_only=True)
    currency = serializers.RegexField(r"^[A-Z]{3}$", help_text="ISO 4217, e.g. USD")
    replicaHour = serializers.DictField(
        child=serializers.RegexField(DECIMAL), help_text="gateway size → price per replica-hour"
    )
    perMillionRequests = serializers.RegexField(DECIMAL)
    perGbSent = serializers.RegexField(DECIMAL, help_text="per GB sent; 1 GB = 10^9 bytes")
    included = IncludedSerializer(help_text="allowances per calendar month")
    updatedAt = serializers.DateTimeField(read_only=True)


class BudgetUpdateSerializer(StrictSerializer):
    amount = serializers.CharField(
        allow_null=True,
        required=False,
        help_text="monthly budget in the price book's currency; 0 or null: none",
    )


class BudgetAlertSerializer(serializers.Serializer):
    threshold = serializers.IntegerField(help_text="80 or 100 (percent)")
    budget = serializers.CharField(**MONEY)
    total = serializers.CharField(help_text="the month's total when it was crossed")
    createdAt = serializers.DateTimeField()


class BudgetSerializer(serializers.Serializer):
    amount = serializers.CharField(allow_null=True, help_text="null: no budget")
    currency = serializers.CharField()
    month = serializers.CharField(help_text="YYYY-MM, the running month")
    spent = serializers.CharField(help_text="the running month's total so far")
    percent = serializers.IntegerField(allow_null=True, help_text="whole percent, rounded down")
    alerts = BudgetAlertSerializer(many=True)


class RevenueTenantSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    name = serializers.CharField()
    plan = serializers.CharField()
    currency = serializers.CharField()
    total = serializers.CharField(help_text="decimal, in the currency's minor unit")
    final = serializers.BooleanField(help_text="from a final invoice (false: the running month)")
    invoice = serializers.CharField(allow_null=True)
    requests = serializers.IntegerField()
    replicaHours = serializers.CharField(help_text="decimal, 6 places")


class RevenueCurrencySerializer(serializers.Serializer):
    currency = serializers.CharField()
    total = serializers.CharField()
    tenants = serializers.IntegerField()


class RevenuePlanSerializer(RevenueCurrencySerializer):
    plan = serializers.CharField()


class RevenueSerializer(serializers.Serializer):
    month = serializers.CharField()
    running = serializers.BooleanField(help_text="the month is the current one (drafts)")
    tenants = RevenueTenantSerializer(many=True)
    topTenants = RevenueTenantSerializer(many=True)
    totalsByCurrency = RevenueCurrencySerializer(many=True)
    totalsByPlan = RevenuePlanSerializer(many=True)
