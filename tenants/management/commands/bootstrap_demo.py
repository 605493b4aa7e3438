"""``manage.py bootstrap_demo``: the ``demo`` tenant with owner ``admin``, for ``make run``."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from tenants import services
from tenants.audit import Actor
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create tenant demo owned by admin (a superuser) unless they exist; print the password."

    def handle(self, **options):
        users = get_user_model().objects
        admin = users.filter(username="admin").first()
        if admin is None:
            password = os.environ.get("GANTRY_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            users.create_superuser(username="admin", email="", password=password)
            self.stdout.write(
                self.style.SUCCESS(
                    f"\n  Created user admin with password: {password}\n"
                    "  (shown once; change it with: "
                    ".venv/bin/python manage.py changepassword admin)\n"
                )
            )
        else:
            self.stdout.write(
                "user admin exists (forgot the password? "
                ".venv/bin/python manage.py changepassword admin)"
            )
        if not Tenant.objects.filter(slug="demo").exists():
            services.create_tenant(Actor.system("bootstrap"), "demo", "admin", display_name="Demo")
            self.stdout.write("created tenant demo owned by admin")
