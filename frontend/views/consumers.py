"""Consumers (a tenant's API clients) and their credentials. An API key is shown once, on the
answer to the POST that made it; passwords and keys are never read back by any page."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from config.errors import GantryError
from frontend.access import actions, page_context, tenant_access
from frontend.form_errors import apply_service_error
from frontend.forms import ConsumerForm, CredentialForm, checked_name
from frontend.once import consume_form_nonce, issue_form_nonce
from frontend.tables import ConsumerTable
from frontend.views.common import posted, render_form, submit, table_page
from frontend.views.editing import expected_version
from frontend.views.traffic import traffic_charts
from gateways import services
from gateways.filters import ConsumerFilter
from gateways.models import Consumer, Credential
from tenants.audit import Actor
from tenants.roles import Role

SECTION = "frontend:consumers"
CREDENTIAL_COLUMNS = ("key_id", "type", "username", "created_at")  # never ``secret``


def get_consumer(access, name: str) -> Consumer:
    return get_object_or_404(Consumer.objects.select_related("tenant"), tenant=access.tenant,
                             name=name)  # fmt: skip


def consumer_url(consumer: Consumer, view: str = "frontend:consumer") -> str:
    return reverse(view, args=[consumer.tenant.slug, consumer.name])


@login_required
def consumer_list(request, tenant):
    access = tenant_access(request, tenant)
    rows = Consumer.objects.filter(tenant=access.tenant).select_related("tenant")
    filterset, table = table_page(request, ConsumerFilter, rows, ConsumerTable, "Consumers")
    new = reverse("frontend:consumer-new", args=[access.tenant.slug])
    context = page_context(request, access, SECTION, filter=filterset, table=table,
                           actions=actions(access, ("New consumer", new, False)))  # fmt: skip
    return render(request, "frontend/consumers/list.html", context)


@login_required
def consumer_create(request, tenant):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    form = ConsumerForm(posted(request))
    del form.fields["resource_version"]

    def write():
        name = checked_name(form.cleaned_data["name"])
        return services.create_consumer(Actor.from_request(request), access.tenant, name,
                                        form.spec())  # fmt: skip

    answer = submit(request, form, ConsumerForm.FIELDS, write, "Consumer created.", consumer_url,
                    conflict_field="name")  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, form=form, creating=True)
    return render_form(request, "frontend/consumers/form.html", context)


@login_required
def consumer_edit(request, tenant, consumer):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    consumer = get_consumer(access, consumer)
    initial = {"description": consumer.spec.get("description", ""),
               "resource_version": consumer.resource_version}  # fmt: skip
    form = ConsumerForm(posted(request), initial=initial)
    del form.fields["name"]

    def write():
        expected = expected_version(form)
        return services.replace_consumer_spec(Actor.from_request(request), consumer, form.spec(),
                                              expected)  # fmt: skip

    answer = submit(request, form, ConsumerForm.FIELDS, write, "Consumer saved.", consumer_url)
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, form=form, consumer=consumer)
    return render_form(request, "frontend/consumers/form.html", context)


def _credential_forms(request, posted_kind: str | None):
    """The two "new credential" forms (API key, password), the posted one bound."""
    return {
        kind: CredentialForm(request.POST if kind == posted_kind else None, initial={"type": kind})
        for kind in (Credential.Type.API_KEY, Credential.Type.BASIC_AUTH)
    }


@never_cache  # the answer to a POST shows a new API key: no cache may keep it
@login_required
def consumer_detail(request, tenant, consumer):
    """The consumer, its credentials, and (editors) the forms making new ones. A POST here
    makes a credential; its API key is shown in this answer and never again."""
    access = tenant_access(request, tenant, write=Role.EDITOR if request.method == "POST" else None)
    consumer = get_consumer(access, consumer)
    kind = request.POST.get("type") if request.method == "POST" else None
    credential_forms = _credential_forms(request, kind)
    created, status = None, 200
    if request.method == "POST" and not consume_form_nonce(request, request.POST.get("nonce", "")):
        messages.info(request, "That form was already submitted, so no new credential was made "
                      "(an API key is shown only once).")  # fmt: skip
        return redirect(consumer_url(consumer))
    if kind in credential_forms and credential_forms[kind].is_valid():
        form = credential_forms[kind]
        try:
            credential, key = services.create_credential(Actor.from_request(request), consumer,
                                                         form.body())  # fmt: skip
        except GantryError as error:
            apply_service_error(form, error, CredentialForm.FIELDS)
            status = 400
        else:
            created = {"credential": credential, "key": key}
            credential_forms = _credential_forms(request, None)
    credentials = Credential.objects.filter(consumer=consumer).only(*CREDENTIAL_COLUMNS)
    context = page_context(
        request, access, SECTION, consumer=consumer, created=created,
        credentials=credentials.order_by("created_at", "key_id"),
        key_form=credential_forms[Credential.Type.API_KEY],
        password_form=credential_forms[Credential.Type.BASIC_AUTH],
        form_nonce=issue_form_nonce(request) if access.can_write else "",
        conditions=consumer.status.get("conditions", []),
        traffic=traffic_charts(access.tenant, f"consumer {consumer.name}", consumer=consumer.name),
        traffic_note="Requests this consumer made, through all the tenant's gateways combined.",
        actions=actions(access, ("Edit", consumer_url(consumer, "frontend:consumer-edit"), False),
                        ("Delete", consumer_url(consumer, "frontend:consumer-delete"), True)),
    )  # fmt: skip
    return render(request, "frontend/consumers/detail.html", context, status=status)


@login_required
def consumer_delete(request, tenant, consumer):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    consumer = get_consumer(access, consumer)
    form = forms.Form(posted(request))  # no fields: it carries the service's refusal

    def write():
        services.delete_consumer(Actor.from_request(request), consumer)

    answer = submit(request, form, {}, write, f"Consumer {consumer.name} deleted.",
                    reverse(SECTION, args=[access.tenant.slug]))  # fmt: skip
    if answer is not None:
        return answer
    credentials = Credential.objects.filter(consumer=consumer).count()
    context = page_context(request, access, SECTION, consumer=consumer, form=form,
                           credentials=credentials)  # fmt: skip
    return render(request, "frontend/consumers/delete.html", context)


@login_required
def credential_delete(request, tenant, consumer, credential):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    consumer = get_consumer(access, consumer)
    rows = Credential.objects.filter(consumer=consumer).only(*CREDENTIAL_COLUMNS, "consumer")
    credential = get_object_or_404(rows, key_id=credential)
    form = forms.Form(posted(request))

    def write():
        services.delete_credential(Actor.from_request(request), credential)

    answer = submit(request, form, {}, write, f"Credential {credential.key_id} deleted.",
                    consumer_url(consumer))  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, consumer=consumer, credential=credential,
                           form=form)  # fmt: skip
    return render(request, "frontend/consumers/credential_delete.html", context)
