"""The base of every operators' admin page for a model that services write.

The admin writes nothing itself: saves and deletes (one object, or many with the "delete
selected" action) call the same service functions as the API, so they are checked, audited
and reconciled like any other write. A refusal (a tenant that still has gateways, the last
owner, a plan in use) is shown as an error message and changes nothing.
"""

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.http import HttpResponseRedirect

from config.errors import GantryError
from tenants.audit import Actor


class ServiceAdmin(admin.ModelAdmin):
    """Subclasses implement ``service_delete`` (and ``save_model`` where changes are allowed)."""

    def service_delete(self, actor: Actor, obj) -> None:
        raise NotImplementedError

    def delete_model(self, request, obj):
        self.service_delete(Actor.from_request(request), obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.service_delete(Actor.from_request(request), obj)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except GantryError as error:  # the whole delete rolled back
            self.message_user(request, f"Not deleted: {error.message}", messages.ERROR)
            return HttpResponseRedirect(request.path)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except GantryError as error:  # the whole save rolled back
            self.message_user(request, f"Not saved: {error.message}", messages.ERROR)
            return HttpResponseRedirect(request.path)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            _, name, description = actions["delete_selected"]
            actions["delete_selected"] = (_delete_through_services, name, description)
        return actions


def _delete_through_services(modeladmin: ServiceAdmin, request, queryset):
    """Django's "delete selected" (its confirmation page first), each object through the
    services; one refusal does not stop the others, and the messages say which failed."""
    if not request.POST.get("post"):
        return delete_selected(modeladmin, request, queryset)
    actor = Actor.from_request(request)
    deleted, refused = 0, []
    for obj in queryset:
        try:
            modeladmin.service_delete(actor, obj)
            deleted += 1
        except GantryError as error:
            refused.append(f"{obj}: {error.message}")
    if deleted:
        modeladmin.message_user(request, f"Deleted {deleted} {_plural(modeladmin, deleted)}.")
    for line in refused:
        modeladmin.message_user(request, f"Not deleted: {line}", messages.ERROR)
    return None


def _plural(modeladmin, count: int) -> str:
    meta = modeladmin.model._meta
    return str(meta.verbose_name if count == 1 else meta.verbose_name_plural)
