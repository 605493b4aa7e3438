"""Operators' cluster pages: list, register, detail with a connection test, edit, delete.
Every write is ``provisioning.cluster_services``', as from the API; the kubeconfig is never
rendered (the field is always empty, and empty on a change keeps the stored one)."""

from django import forms
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from frontend.ops_access import operator_required, ops_context
from frontend.ops_forms import ClusterForm, checked
from frontend.ops_tables import OpsClusterTable
from frontend.views.common import posted, render_form, submit, table_page
from provisioning import cluster_services as services
from provisioning.cluster_serializers import ClusterSerializer, ClusterUpdateSerializer
from provisioning.cluster_views import clusters
from provisioning.models import KubernetesCluster
from tenants.audit import Actor

SECTION = "frontend:ops-clusters"


class NoFilter(forms.Form):
    """The cluster list has no filters (the API's has none either)."""


class _Unfiltered:
    def __init__(self, data, queryset):
        self.qs, self.form = queryset, NoFilter()

    def is_valid(self):
        return True


def cluster_url(cluster: KubernetesCluster, view: str = "frontend:ops-cluster") -> str:
    return reverse(view, args=[cluster.name])


def get_cluster(name: str) -> KubernetesCluster:
    return get_object_or_404(clusters(), name=name)


@operator_required
def cluster_list(request):
    _, table = table_page(request, _Unfiltered, clusters(), OpsClusterTable, "Clusters")
    context = ops_context(SECTION, table=table, new_url=reverse("frontend:ops-cluster-new"))
    return render(request, "frontend/ops/clusters/list.html", context)


@never_cache
@operator_required
def cluster_create(request):
    form = ClusterForm(posted(request), initial=ClusterForm.initial_for(None))

    def write():
        return services.register_cluster(Actor.from_request(request),
                                         checked(ClusterSerializer, form.body()))  # fmt: skip

    answer = submit(request, form, ClusterForm.FIELDS, write, "Cluster registered.",
                    cluster_url, conflict_field="name")  # fmt: skip
    if answer is not None:
        return answer
    context = ops_context(SECTION, form=form, creating=True)
    return render_form(request, "frontend/ops/clusters/form.html", context)


def _detail(request, cluster, result=None):
    placements = cluster.placements.select_related("gateway__tenant").order_by(
        "gateway__tenant__slug", "gateway__name")[:50]  # fmt: skip
    context = ops_context(SECTION, cluster=cluster, placements=placements, result=result,
                          plans=sorted(plan.name for plan in cluster.plans.all()))  # fmt: skip
    return render(request, "frontend/ops/clusters/detail.html", context)


@operator_required
def cluster_detail(request, name):
    return _detail(request, get_cluster(name))


@operator_required
def cluster_test(request, name):
    """POST: calls the cluster's API server and shows the answer on the detail page."""
    cluster = get_cluster(name)
    if request.method != "POST":
        return _detail(request, cluster)
    result = services.test_connection(Actor.from_request(request), cluster)
    return _detail(request, cluster, result)


@never_cache
@operator_required
def cluster_edit(request, name):
    cluster = get_cluster(name)
    form = ClusterForm(posted(request), initial=ClusterForm.initial_for(cluster))
    del form.fields["name"]

    def write():
        changes = checked(ClusterUpdateSerializer, form.body())
        return services.update_cluster(Actor.from_request(request), cluster, changes)

    answer = submit(request, form, ClusterForm.FIELDS, write, "Cluster saved.", cluster_url)
    if answer is not None:
        return answer
    context = ops_context(SECTION, form=form, cluster=cluster)
    return render_form(request, "frontend/ops/clusters/form.html", context)


@operator_required
def cluster_delete(request, name):
    cluster = get_cluster(name)
    form = forms.Form(posted(request))  # no fields: it carries the service's refusal

    def write():
        services.delete_cluster(Actor.from_request(request), cluster)

    answer = submit(request, form, {}, write, f"Cluster {cluster.name} deleted.",
                    reverse(SECTION))  # fmt: skip
    if answer is not None:
        return answer
    context = ops_context(SECTION, cluster=cluster, form=form)
    return render_form(request, "frontend/ops/clusters/delete.html", context)
