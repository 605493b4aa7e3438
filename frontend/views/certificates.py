"""Certificates of a tenant: list, upload, detail, replace (renewal), delete. The private key
is write-only: no page renders it, not even a form shown again with errors."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from frontend.access import actions, page_context, tenant_access
from frontend.forms import CertificateForm, checked_name
from frontend.tables import CertificateTable
from frontend.views.common import posted, render_form, submit, table_page
from frontend.views.editing import expected_version
from gateways import services
from gateways.filters import CertificateFilter
from gateways.models import Certificate
from tenants.audit import Actor
from tenants.roles import Role

SECTION = "frontend:certificates"


def get_certificate(access, name: str) -> Certificate:
    rows = Certificate.objects.select_related("tenant").defer("private_key")
    return get_object_or_404(rows, tenant=access.tenant, name=name)


def certificate_url(certificate: Certificate, view: str = "frontend:certificate") -> str:
    return reverse(view, args=[certificate.tenant.slug, certificate.name])


@login_required
def certificate_list(request, tenant):
    access = tenant_access(request, tenant)
    rows = Certificate.objects.filter(tenant=access.tenant).select_related("tenant")
    rows = rows.defer("private_key")  # never read, not even to be left unrendered
    filterset, table = table_page(request, CertificateFilter, rows, CertificateTable,
                                  "Certificates")  # fmt: skip
    new = reverse("frontend:certificate-new", args=[access.tenant.slug])
    context = page_context(request, access, SECTION, filter=filterset, table=table,
                           actions=actions(access, ("New certificate", new, False)))  # fmt: skip
    return render(request, "frontend/certificates/list.html", context)


@never_cache  # the POST carried a private key: no cache keeps the answer
@login_required
def certificate_create(request, tenant):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    form = CertificateForm(posted(request))
    del form.fields["resource_version"]

    def write():
        name = checked_name(form.cleaned_data["name"])
        return services.create_certificate(
            Actor.from_request(request), access.tenant, name, form.spec()
        )

    answer = submit(request, form, CertificateForm.FIELDS, write, "Certificate uploaded.",
                    certificate_url, conflict_field="name")  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, form=form, creating=True)
    return render_form(request, "frontend/certificates/form.html", context)


@login_required
def certificate_detail(request, tenant, certificate):
    access = tenant_access(request, tenant)
    certificate = get_certificate(access, certificate)
    context = page_context(
        request, access, SECTION, certificate=certificate, facts=certificate.status,
        conditions=certificate.status.get("conditions", []),
        actions=actions(
            access,
            ("Replace", certificate_url(certificate, "frontend:certificate-edit"), False),
            ("Delete", certificate_url(certificate, "frontend:certificate-delete"), True),
        ),
    )  # fmt: skip
    return render(request, "frontend/certificates/detail.html", context)


@never_cache
@login_required
def certificate_edit(request, tenant, certificate):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    certificate = get_certificate(access, certificate)
    initial = {"certificate_pem": certificate.spec.get("certificatePem", ""),
               "resource_version": certificate.resource_version}  # fmt: skip
    form = CertificateForm(posted(request), initial=initial)
    del form.fields["name"]

    def write():
        expected = expected_version(form)
        return services.replace_certificate(
            Actor.from_request(request), certificate, form.spec(), expected
        )

    answer = submit(request, form, CertificateForm.FIELDS, write, "Certificate replaced.",
                    certificate_url)  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, form=form, certificate=certificate)
    return render_form(request, "frontend/certificates/form.html", context)


@login_required
def certificate_delete(request, tenant, certificate):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    certificate = get_certificate(access, certificate)
    form = forms.Form(posted(request))  # no fields: it carries the service's refusal

    def write():
        services.delete_certificate(Actor.from_request(request), certificate)

    answer = submit(request, form, {}, write, f"Certificate {certificate.name} deleted.",
                    reverse(SECTION, args=[access.tenant.slug]))  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, certificate=certificate, form=form)
    return render(request, "frontend/certificates/delete.html", context)
