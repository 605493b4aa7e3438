"""``manage.py close_billing_period [--month YYYY-MM] [--tenant SLUG]``: writes the month's
final invoices (default: the previous month, every tenant) and prints what it did. Closing a
month again finds its invoices and writes nothing."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing import invoices
from billing.money import text
from config.errors import GantryError
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Close a billing month: write each tenant's final invoice (default: previous month)."

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: the previous month, UTC)")
        parser.add_argument("--tenant", help="only this tenant's slug (default: every tenant)")

    def handle(self, **options):
        now = timezone.now()
        try:
            month = (
                invoices.parse_month(options["month"], "--month")
                if options["month"]
                else invoices.previous_month(now)
            )
            tenant = None
            if options["tenant"]:
                tenant = Tenant.objects.filter(slug=options["tenant"]).first()
                if tenant is None:
                    raise CommandError(f"--tenant: no tenant {options['tenant']!r}")
            results = list(invoices.close_all(month, tenant=tenant, now=now))
        except GantryError as error:
            message = error.message
            raise CommandError(
                "--" + message if message.startswith("month:") else message
            ) from None
        failed = 0
        for each, invoice, written, problem in results:
            if problem:
                failed += 1
                self.stderr.write(f"{each.slug}: not closed: {problem}")
                continue
            verb = "wrote" if written else "already closed:"
            total = f"{invoice.currency} {text(invoice.total, invoice.currency)}"
            self.stdout.write(f"{each.slug}: {verb} {invoice.number} ({total})")
        self.stdout.write(
            f"{month:%Y-%m}: {sum(1 for r in results if r[2])} invoices written, "
            f"{sum(1 for r in results if r[1] and not r[2])} already closed, {failed} failed"
        )
        if failed:
            raise CommandError(f"{failed} tenants could not be closed")
