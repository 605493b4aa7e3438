"""Every write to tenants, plans, memberships and tokens: one function per use case.

Each runs in one transaction, checks the domain rules, and leaves an audit event. The API, the
console and the management commands all call these; none writes these models directly.
"""

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from config.api.versioning import check_version
from config.errors import (
    Conflict,
    Forbidden,
    NotFound,
    QuotaExceeded,
    TenantSuspended,
    ValidationFailed,
)
from tenants import audit, quotas, tokens
from tenants.audit import Actor
from tenants.models import ApiToken, AuditEvent, Membership, Plan, Tenant
from tenants.roles import Role, at_least


def snapshot_tenant(tenant: Tenant) -> dict:
    return {
        "slug": tenant.slug,
        "displayName": tenant.display_name,
        "plan": tenant.plan.name,
        "suspended": tenant.suspended,
    }


def snapshot_plan(plan: Plan) -> dict:
    return {
        "name": plan.name,
        "displayName": plan.display_name,
        "maxGateways": plan.max_gateways,
        "maxReplicasPerGateway": plan.max_replicas_per_gateway,
        "maxRoutesPerGateway": plan.max_routes_per_gateway,
        "maxBackends": plan.max_backends,
        "maxCertificates": plan.max_certificates,
        "maxConsumers": plan.max_consumers,
        "maxTokensPerUser": plan.max_tokens_per_user,
        "accessLogRetentionDays": plan.access_log_retention_days,
        "allowedSizes": list(plan.allowed_sizes),
    }


def _plan_named(name: str, path: str = "plan") -> Plan:
    plan = Plan.objects.filter(name=name).first()
    if plan is None:
        known = ", ".join(Plan.objects.values_list("name", flat=True)) or "none"
        raise ValidationFailed.one(path, f"no plan named {name!r} (plans: {known})", "not_found")
    return plan


def _user_named(username: str, path: str):
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ValidationFailed.one(path, f"no active user named {username!r}", "not_found")
    return user


@transaction.atomic
def create_plan(actor: Actor, fields: dict) -> Plan:
    if Plan.objects.filter(name=fields["name"]).exists():
        raise Conflict(f"a plan named {fields['name']!r} already exists")
    plan = Plan.objects.create(**fields)
    audit.record(actor, "create", "plan", plan.name, tenant=None, after=snapshot_plan(plan))
    return plan


@transaction.atomic
def update_plan(actor: Actor, plan: Plan, changes: dict, expected: int | None = None) -> Plan:
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    check_version(plan.resource_version, expected, f"plan {plan.name}")
    before = snapshot_plan(plan)
    for field, value in changes.items():
        setattr(plan, field, value)
    plan.resource_version += 1
    plan.save()
    audit.record(
        actor, "update", "plan", plan.name, tenant=None, before=before, after=snapshot_plan(plan)
    )
    return plan


@transaction.atomic
def delete_plan(actor: Actor, plan: Plan) -> None:
    users = plan.tenants.count()
    if users:
        raise Conflict(f"plan {plan.name!r} is used by {users} tenant(s); move them first")
    audit.record(actor, "delete", "plan", plan.name, tenant=None, before=snapshot_plan(plan))
    plan.delete()


@transaction.atomic
def create_tenant(
    actor: Actor, slug: str, owner_username: str, *, display_name: str = "", plan: str = ""
) -> Tenant:
    from django.conf import settings

    owner = _user_named(owner_username, "owner")
    plan_obj = _plan_named(plan or settings.GANTRY_DEFAULT_PLAN)
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(f"a tenant named {slug!r} already exists")
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(
                slug=slug, display_name=display_name or slug, plan=plan_obj
            )
    except IntegrityError:
        raise Conflict(f"a tenant named {slug!r} already exists") from None
    Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    audit.record(actor, "create", "tenant", slug, tenant=tenant, after=snapshot_tenant(tenant))
    audit.record(
        actor,
        "create",
        "member",
        owner.username,
        tenant=tenant,
        after={"user": owner.username, "role": Role.OWNER},
    )
    return tenant


def _check_plan_fits(tenant: Tenant, plan: Plan) -> None:
    gateways = tenant.gateways.all()
    count = gateways.count()
    if count > plan.max_gateways:
        raise QuotaExceeded(
            "maxGateways",
            limit=plan.max_gateways,
            used=count,
            requested=0,
            plan=plan.name,
            message=f"plan {plan.name!r} allows "
            f"{plan.max_gateways} gateways; the tenant has {count}",
        )


@transaction.atomic
def update_tenant(actor: Actor, tenant: Tenant, changes: dict, expected: int | None = None):
    """``changes`` may hold display_name (admins), plan and suspended (operators only)."""
    tenant = Tenant.objects.select_for_update(of=("self",)).select_related("plan").get(pk=tenant.pk)
    check_version(tenant.resource_version, expected, f"tenant {tenant.slug}")
    operator_only = {"plan", "suspended"} & set(changes)
    if operator_only and not actor.is_staff:
        field = sorted(operator_only)[0]
        raise Forbidden(f"only platform operators may change {field}")
    before = snapshot_tenant(tenant)
    if "display_name" in changes:
        tenant.display_name = changes["display_name"]
    if "suspended" in changes:
        tenant.suspended = changes["suspended"]
    if "plan" in changes:
        plan = _plan_named(changes["plan"])
        _check_plan_fits(tenant, plan)
        tenant.plan = plan
    tenant.resource_version += 1
    tenant.save()
    audit.record(
        actor,
        "update",
        "tenant",
        tenant.slug,
        tenant=tenant,
        before=before,
        after=snapshot_tenant(tenant),
    )
    return tenant


@transaction.atomic
def delete_tenant(actor: Actor, tenant: Tenant) -> None:
    tenant = Tenant.objects.select_for_update(of=("self",)).select_related("plan").get(pk=tenant.pk)
    gateways = tenant.gateways.count()
    if gateways:
        raise Conflict(f"tenant {tenant.slug!r} still has {gateways} gateway(s); delete them first")
    audit.record(
        actor, "delete", "tenant", tenant.slug, tenant=tenant, before=snapshot_tenant(tenant)
    )
    tenant.delete()


def _guard_owner_change(actor_role: str, *roles: str) -> None:
    if Role.OWNER in roles and not at_least(actor_role, Role.OWNER):
        raise Forbidden("only owners may grant, change or remove the owner role")


def _keep_an_owner(membership: Membership) -> None:
    owners = Membership.objects.select_for_update().filter(
        tenant=membership.tenant, role=Role.OWNER
    )
    if membership.role == Role.OWNER and owners.count() <= 1:
        raise Conflict("a tenant must keep at least one owner; add another owner first")


def _addable_user(actor: Actor, username: str):
    """The user a member of ``actor``'s standing may add, or one 400 for every refusal.

    Operators add anyone. Others add only people who already share a tenant with them: they
    know those names already, so the platform's list of users stays private. "No such user"
    and "not a user you may add" read the same, and take the same single query.
    """
    users = get_user_model().objects.filter(username=username, is_active=True)
    if not actor.is_staff:
        users = users.filter(memberships__tenant__memberships__user=actor.user)
    user = users.distinct().first()
    if user is None:
        raise ValidationFailed.one(
            "user",
            f"no user {username!r} that you can add: you can add people who already share a "
            "tenant with you; a platform operator adds anyone else",
            "not_found",
        )
    return user


@transaction.atomic
def add_member(actor: Actor, actor_role: str, tenant: Tenant, username: str, role: str):
    _guard_owner_change(actor_role, role)
    user = _addable_user(actor, username)
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise Conflict(f"{username!r} is already a member of {tenant.slug!r}")
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    audit.record(
        actor, "create", "member", username, tenant=tenant, after={"user": username, "role": role}
    )
    return membership


@transaction.atomic
def change_member_role(actor: Actor, actor_role: str, membership: Membership, role: str):
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "tenant")
        .get(pk=membership.pk)
    )
    _guard_owner_change(actor_role, membership.role, role)
    if membership.role == role:
        return membership
    if membership.role == Role.OWNER:
        _keep_an_owner(membership)
    before = {"user": membership.user.username, "role": membership.role}
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    audit.record(
        actor,
        "update",
        "member",
        membership.user.username,
        tenant=membership.tenant,
        before=before,
        after={"user": membership.user.username, "role": role},
    )
    return membership


@transaction.atomic
def remove_member(actor: Actor, actor_role: str, membership: Membership) -> None:
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "tenant")
        .get(pk=membership.pk)
    )
    _guard_owner_change(actor_role, membership.role)
    _keep_an_owner(membership)
    # A former member's tokens must stop working at once.
    ApiToken.objects.filter(
        tenant=membership.tenant, user=membership.user, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    audit.record(
        actor,
        "delete",
        "member",
        membership.user.username,
        tenant=membership.tenant,
        before={"user": membership.user.username, "role": membership.role},
    )
    membership.delete()


def _minted_expiry(actor: Actor, expires_at: datetime | None) -> datetime | None:
    """The expiry of a token made by ``actor``: a request made with an API token can only make
    tokens that expire no later than that token (omitted: the same expiry). Sessions (the
    console, operators' commands) may make tokens that never expire."""
    if not actor.token_prefix:
        return expires_at
    parent = ApiToken.objects.filter(prefix=actor.token_prefix).only("expires_at").first()
    limit = parent.expires_at if parent else None
    if expires_at is None and limit is None:
        raise ValidationFailed.one(
            "expiresAt",
            "required when the request is made with an API token that never expires: a token "
            "cannot make a token that never expires (sign in to the console for that)",
        )
    if expires_at is None:
        return limit
    if limit is not None and expires_at > limit:
        raise ValidationFailed.one(
            "expiresAt",
            f"must not be later than {limit.isoformat()}, when the API token making this "
            "request expires",
        )
    return expires_at


@transaction.atomic
def create_token(
    actor: Actor, tenant: Tenant, name: str, *, user=None, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token for ``user`` (default: the actor). Returns it and its plaintext, shown once."""
    user = user or actor.user
    tenant = quotas.lock_tenant(tenant)
    if tenant.suspended and not actor.is_staff:
        raise TenantSuspended(f"tenant {tenant.slug!r} is suspended and read-only")
    if not Membership.objects.filter(tenant=tenant, user=user).exists() and not user.is_staff:
        raise ValidationFailed.one("user", f"{user.username!r} is not a member of {tenant.slug!r}")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed.one("expiresAt", "must be in the future")
    expires_at = _minted_expiry(actor, expires_at)
    quotas.check_count(tenant, "maxTokensPerUser", active_tokens(tenant, user).count())
    new = tokens.generate()
    token = ApiToken.objects.create(
        prefix=new.prefix,
        digest=new.digest,
        name=name,
        tenant=tenant,
        user=user,
        expires_at=expires_at,
    )
    audit.record(
        actor,
        "create",
        "token",
        token.prefix,
        tenant=tenant,
        after={
            "prefix": token.prefix,
            "name": name,
            "user": user.username,
            "expiresAt": expires_at.isoformat() if expires_at else None,
        },
    )
    return token, new.plaintext


def active_tokens(tenant: Tenant, user):
    """The user's tokens in the tenant that still work (neither revoked nor expired)."""
    return ApiToken.objects.filter(tenant=tenant, user=user, revoked_at__isnull=True).exclude(
        expires_at__lte=timezone.now()
    )


@transaction.atomic
def revoke_token(actor: Actor, token: ApiToken) -> ApiToken:
    token = (
        ApiToken.objects.select_for_update(of=("self",))
        .select_related("tenant", "user")
        .get(pk=token.pk)
    )
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(
            actor,
            "revoke",
            "token",
            token.prefix,
            tenant=token.tenant,
            before={"prefix": token.prefix, "name": token.name, "user": token.user.username},
        )
    return token


def prune_audit_events(retention_days: int) -> int:
    """Deletes audit events older than the retention; returns how many went."""
    cutoff = timezone.now() - timedelta(days=retention_days)
    deleted, _ = AuditEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def bump(model, pk) -> None:
    model.objects.filter(pk=pk).update(resource_version=F("resource_version") + 1)


def get_membership(tenant: Tenant, username: str) -> Membership:
    membership = (
        Membership.objects.select_related("user")
        .filter(tenant=tenant, user__username=username)
        .first()
    )
    if membership is None:
        raise NotFound(f"no member {username!r}")
    return membership
