"""``manage.py create_tenant SLUG --owner USERNAME [--plan P] [--display-name N]``."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.errors import GantryError
from tenants import services
from tenants.audit import Actor


class Command(BaseCommand):
    help = "Create a tenant with an owner (the user is created, with a printed password, if new)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True)
        parser.add_argument("--plan", default="")
        parser.add_argument("--display-name", default="")

    def handle(self, slug, owner, plan, display_name, **options):
        users = get_user_model().objects
        if not users.filter(username=owner).exists():
            password = secrets.token_urlsafe(12)
            users.create_user(username=owner, password=password)
            self.stdout.write(f"created user {owner} with password {password}")
        try:
            tenant = services.create_tenant(
                Actor.system("create_tenant"), slug, owner, display_name=display_name, plan=plan
            )
        except GantryError as error:
            raise CommandError(error.message) from None
        self.stdout.write(
            f"created tenant {tenant.slug} (plan {tenant.plan.name}) owned by {owner}"
        )
