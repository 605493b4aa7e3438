"""Users a tenant admin may add: people who already share a tenant with them."""

from tenants import services
from tenants.audit import Actor
from tenants.roles import Role
from tests.conftest import make_user


def colleague(org, username: str, slug: str = "side-project"):
    """A new user who shares tenant ``slug`` with the org's owner and admin (made if needed)."""
    from tenants.models import Tenant

    actor = Actor.system("tests")
    user = make_user(username)
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        tenant = services.create_tenant(actor, slug, org.users[Role.OWNER].username)
        services.add_member(actor, Role.OWNER, tenant, org.users[Role.ADMIN].username, Role.ADMIN)
    services.add_member(actor, Role.OWNER, tenant, username, Role.VIEWER)
    return user
