"""API representations of tenants, plans, members, tokens and audit events (camelCase)."""

from django.contrib.auth import get_user_model
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from config.validators import (
    DNS_LABEL,
    DNS_LABEL_MESSAGE,
    validate_display_paragraphs,
    validate_display_text,
)
from tenants.models import ApiToken, AuditEvent, Membership, Plan
from tenants.roles import Role


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo is an error instead of silently ignored."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        errors = {key: [ErrorDetail("unknown field", code="unknown_field")] for key in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            detail = (
                error.detail
                if isinstance(error.detail, dict)
                else {"non_field_errors": error.detail}
            )
            raise serializers.ValidationError({**detail, **errors}) from None
        if errors:
            raise serializers.ValidationError(errors)
        return value


def display_text_field(**kwargs) -> serializers.CharField:
    """One line shown to other people (a display name, a token's name): no control, bidi or
    invisible formatting characters."""
    return serializers.CharField(validators=[validate_display_text], **kwargs)


def dns_label_field(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(
        DNS_LABEL, max_length=63, error_messages={"invalid": DNS_LABEL_MESSAGE}, **kwargs
    )


class PlanSerializer(StrictSerializer):
    name = dns_label_field()
    displayName = display_text_field(source="display_name", max_length=100)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", validators=[validate_display_paragraphs]
    )
    maxGateways = serializers.IntegerField(source="max_gateways", min_value=0, max_value=100000)
    maxReplicasPerGateway = serializers.IntegerField(
        source="max_replicas_per_gateway", min_value=1, max_value=1000
    )
    maxRoutesPerGateway = serializers.IntegerField(
        source="max_routes_per_gateway", min_value=0, max_value=100000
    )
    maxBackends = serializers.IntegerField(
        source="max_backends", min_value=0, max_value=100000, default=200
    )
    maxCertificates = serializers.IntegerField(
        source="max_certificates", min_value=0, max_value=100000, default=100
    )
    maxConsumers = serializers.IntegerField(
        source="max_consumers", min_value=0, max_value=100000, default=1000
    )
    maxTokensPerUser = serializers.IntegerField(
        source="max_tokens_per_user", min_value=0, max_value=10000, default=25
    )
    accessLogRetentionDays = serializers.IntegerField(
        source="access_log_retention_days", min_value=1, max_value=3650, default=7
    )
    allowedSizes = serializers.ListField(
        source="allowed_sizes", child=serializers.ChoiceField(choices=[]), allow_empty=True
    )
    resourceVersion = serializers.CharField(source="resource_version", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from gateways.sizes import SIZES

        self.fields["allowedSizes"].child.choices = list(SIZES)
        self.fields["allowedSizes"].child.choice_strings_to_values = {s: s for s in SIZES}


class PlanUpdateSerializer(PlanSerializer):
    name = dns_label_field(read_only=True)


class TenantSerializer(StrictSerializer):
    slug = dns_label_field()
    displayName = display_text_field(
        source="display_name", max_length=100, required=False, allow_blank=False
    )
    plan = serializers.SlugRelatedField(
        slug_field="name", queryset=Plan.objects.all(), required=False
    )
    suspended = serializers.BooleanField(read_only=True)
    role = serializers.SerializerMethodField()
    resourceVersion = serializers.CharField(source="resource_version", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)

    def get_role(self, tenant) -> str | None:
        roles = self.context.get("roles", {})
        return roles.get(tenant.pk)


class TenantCreateSerializer(TenantSerializer):
    plan = serializers.CharField(required=False, max_length=63)
    owner = serializers.CharField(max_length=150, help_text="username of the first owner")


class TenantUpdateSerializer(StrictSerializer):
    displayName = display_text_field(source="display_name", max_length=100, required=False)
    plan = serializers.CharField(required=False, max_length=63)
    suspended = serializers.BooleanField(required=False)
    resourceVersion = serializers.CharField(required=False)


class MemberSerializer(StrictSerializer):
    user = serializers.CharField(source="user.username", max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)


class MemberUpdateSerializer(StrictSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices)


class TokenSerializer(StrictSerializer):
    prefix = serializers.CharField(read_only=True)
    name = display_text_field(max_length=100)
    user = serializers.CharField(source="user.username", read_only=True)
    expiresAt = serializers.DateTimeField(source="expires_at", required=False, allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    lastUsedAt = serializers.DateTimeField(source="last_used_at", read_only=True, allow_null=True)
    revokedAt = serializers.DateTimeField(source="revoked_at", read_only=True, allow_null=True)
    active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken


class NewTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="shown once; store it now")


class AuditEventSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    time = serializers.DateTimeField(source="created_at", read_only=True)
    actor = serializers.CharField(source="actor_name", read_only=True)
    tokenPrefix = serializers.CharField(source="token_prefix", read_only=True)
    action = serializers.CharField(read_only=True)
    objectType = serializers.CharField(source="object_type", read_only=True)
    objectName = serializers.CharField(source="object_name", read_only=True)
    before = serializers.JSONField(read_only=True)
    after = serializers.JSONField(read_only=True)
    requestId = serializers.CharField(source="request_id", read_only=True)
    clientAddress = serializers.IPAddressField(source="client_ip", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent


class MeSerializer(serializers.Serializer):
    username = serializers.CharField(read_only=True)
    isStaff = serializers.BooleanField(source="is_staff", read_only=True)
    memberships = serializers.SerializerMethodField()

    def get_memberships(self, user) -> list[dict]:
        rows = Membership.objects.filter(user=user).select_related("tenant")
        return [{"tenant": m.tenant.slug, "role": m.role} for m in rows]

    class Meta:
        model = get_user_model()
