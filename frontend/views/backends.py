"""Backends of a tenant: list, create, detail, edit (fields or the whole spec), delete."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from frontend import structured_input
from frontend.access import actions, page_context, tenant_access
from frontend.forms import BackendForm, checked_name
from frontend.tables import BackendTable
from frontend.views.common import posted, submit, table_page
from frontend.views.editing import expected_version, for_create, form_page
from gateways import services
from gateways.filters import BackendFilter
from gateways.models import Backend
from tenants.audit import Actor
from tenants.roles import Role

SECTION = "frontend:backends"


def get_backend(access, name: str) -> Backend:
    return get_object_or_404(Backend.objects.select_related("tenant"), tenant=access.tenant,
                             name=name)  # fmt: skip


def backend_url(backend: Backend, view: str = "frontend:backend") -> str:
    return reverse(view, args=[backend.tenant.slug, backend.name])


def _fields(request) -> dict[str, str]:
    return (
        BackendForm.SPEC_FIELDS if request.POST.get("mode") == "spec" else BackendForm.COMMON_FIELDS
    )


def _spec(request, form) -> dict:
    return form.spec_from_text() if request.POST.get("mode") == "spec" else form.spec_from_fields()


def _form_context(request, access, form, **extra) -> dict:
    common = [form[name] for name in BackendForm.COMMON]
    return page_context(request, access, SECTION, form=form, common_fields=common, **extra)


@login_required
def backend_list(request, tenant):
    access = tenant_access(request, tenant)
    rows = Backend.objects.filter(tenant=access.tenant).select_related("tenant")
    filterset, table = table_page(request, BackendFilter, rows, BackendTable, "Backends")
    new = reverse("frontend:backend-new", args=[access.tenant.slug])
    context = page_context(request, access, SECTION, filter=filterset, table=table,
                           actions=actions(access, ("New backend", new, False)))  # fmt: skip
    return render(request, "frontend/backends/list.html", context)


@login_required
def backend_create(request, tenant):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    form = for_create(BackendForm(posted(request), initial=BackendForm.initial_for({})))

    def write():
        name = checked_name(form.cleaned_data["name"])
        return services.create_backend(
            Actor.from_request(request), access.tenant, name, _spec(request, form)
        )

    return form_page(
        request, form, write, fields=_fields(request), done="Backend created.",
        success_url=backend_url, conflict_field="name", template="frontend/backends/form.html",
        context=lambda: _form_context(request, access, form, creating=True),
    )  # fmt: skip


@login_required
def backend_detail(request, tenant, backend):
    access = tenant_access(request, tenant)
    backend = get_backend(access, backend)
    endpoints = []
    for endpoint in backend.spec.get("endpoints", []):
        kind = "ip" if "ip" in endpoint else "fqdn"
        value = endpoint[kind]
        endpoints.append({"kind": kind, "host": value.get("address") or value.get("hostname"),
                          "port": value.get("port")})  # fmt: skip
    service = backend.spec.get("kubernetesService")
    if service:  # endpoints discovered from the Service's EndpointSlices (docs/discovery.md)
        endpoints.append(
            {
                "kind": "kubernetesService",
                "port": service["port"],
                "host": f"{service['cluster']}/{service['namespace']}/{service['name']}",
            }
        )
    context = page_context(
        request, access, SECTION, backend=backend, endpoints=endpoints,
        conditions=backend.status.get("conditions", []),
        spec_yaml=structured_input.dump(backend.spec),
        actions=actions(access, ("Edit", backend_url(backend, "frontend:backend-edit"), False),
                        ("Delete", backend_url(backend, "frontend:backend-delete"), True)),
    )  # fmt: skip
    return render(request, "frontend/backends/detail.html", context)


@login_required
def backend_edit(request, tenant, backend):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    backend = get_backend(access, backend)
    initial = {
        **BackendForm.initial_for(backend.spec),
        "resource_version": backend.resource_version,
    }
    form = BackendForm(posted(request), initial=initial)
    del form.fields["name"]

    def write():
        return services.replace_backend_spec(
            Actor.from_request(request), backend, _spec(request, form), expected_version(form)
        )

    return form_page(
        request, form, write, fields=_fields(request), done="Backend saved.",
        success_url=backend_url, template="frontend/backends/form.html",
        context=lambda: _form_context(request, access, form, backend=backend),
    )  # fmt: skip


@login_required
def backend_delete(request, tenant, backend):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    backend = get_backend(access, backend)
    form = forms.Form(posted(request))  # no fields: it carries the service's refusal

    def write():
        services.delete_backend(Actor.from_request(request), backend)

    answer = submit(request, form, {}, write, f"Backend {backend.name} deleted.",
                    reverse(SECTION, args=[access.tenant.slug]))  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, backend=backend, form=form)
    return render(request, "frontend/backends/delete.html", context)
