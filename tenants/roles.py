"""Membership roles and what each may do.

viewer reads; editor manages gateways and everything under them; admin also manages members
and tokens; owner also billing and deleting the tenant. Platform operators (staff) act as owners
of every tenant and alone manage tenants' plans and suspension.
"""

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3, Role.OWNER: 4}


def at_least(role: str | None, required: str) -> bool:
    return role is not None and _RANK[Role(role)] >= _RANK[Role(required)]
