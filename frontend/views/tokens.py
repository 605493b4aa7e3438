"""API tokens: every member creates and revokes their own; admins see and revoke everyone's."""

from datetime import datetime, time

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from config.errors import GantryError
from config.validators import validate_display_text
from frontend.access import page_context, tenant_access
from frontend.once import consume_form_nonce, issue_form_nonce
from tenants import services
from tenants.audit import Actor
from tenants.models import ApiToken


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        validators=[validate_display_text],
        help_text="what the token is for, e.g. ci-deploy",
    )
    expires_on = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="leave empty for a token that does not expire",
    )


def _visible_tokens(request, access):
    tokens = ApiToken.objects.filter(tenant=access.tenant).select_related("user")
    if not access.is_admin:
        tokens = tokens.filter(user=request.user)
    return tokens


@never_cache  # the answer to a POST shows a new token's secret: no cache may keep it
@login_required
def tokens(request, tenant):
    access = tenant_access(request, tenant)
    if request.method == "POST" and not consume_form_nonce(request, request.POST.get("nonce", "")):
        messages.info(
            request,
            "That form was already submitted, so no new token was created "
            "(a token's secret is shown only once).",
        )
        return redirect("frontend:tokens", tenant=access.tenant.slug)
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        expires_on = form.cleaned_data["expires_on"]
        expires_at = (
            timezone.make_aware(datetime.combine(expires_on, time.max)) if expires_on else None
        )
        try:
            token, plaintext = services.create_token(
                Actor.from_request(request),
                access.tenant,
                form.cleaned_data["name"],
                expires_at=expires_at,
            )
            created = {"token": token, "plaintext": plaintext}
            form = TokenForm()
        except GantryError as error:
            form.add_error(None, error.message)
    context = page_context(
        request,
        access,
        "frontend:tokens",
        tokens=_visible_tokens(request, access),
        form=form,
        form_nonce=issue_form_nonce(request),
        created=created,
    )
    return render(request, "frontend/tokens.html", context)


@login_required
@require_POST
def revoke_token(request, tenant, prefix):
    access = tenant_access(request, tenant)
    token = get_object_or_404(_visible_tokens(request, access), prefix=prefix)
    services.revoke_token(Actor.from_request(request), token)
    messages.success(request, f"Token {token.prefix} revoked.")
    return redirect("frontend:tokens", tenant=access.tenant.slug)
