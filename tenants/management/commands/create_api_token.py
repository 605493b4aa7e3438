"""``manage.py create_api_token --tenant SLUG --user USERNAME``: prints only the token."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.errors import GantryError
from tenants import services
from tenants.audit import Actor
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create an API token for a member of a tenant and print it (only the token)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", default="created with manage.py")

    def handle(self, tenant, user, name, **options):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"no tenant {tenant!r}")
        user_obj = get_user_model().objects.filter(username=user).first()
        if user_obj is None:
            raise CommandError(f"no user {user!r}")
        try:
            _, plaintext = services.create_token(
                Actor.system("create_api_token"), tenant_obj, name, user=user_obj
            )
        except GantryError as error:
            raise CommandError(error.message) from None
        self.stdout.write(plaintext)
