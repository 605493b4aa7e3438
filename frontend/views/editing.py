"""The create and edit pages' one shape (routes, policies, backends): a form whose POST calls
one service through ``submit``, else the form page (400 when it shows the service's errors),
and the resourceVersion an edit form carries."""

from config.errors import ValidationFailed
from frontend.views.common import render_form, submit, version


def form_page(request, form, write, *, fields: dict[str, str], done: str, success_url,
              template: str, context, conflict_field: str | None = None):  # fmt: skip
    """A create or edit page. ``write()`` calls the service (only for a POST whose form is
    valid); ``context()`` is the page's context (only built when the page is shown)."""
    answer = submit(request, form, fields, write, done, success_url, conflict_field)
    if answer is not None:
        return answer
    return render_form(request, template, {**context(), "form": form})


def for_create(form):
    """A new object's form: it has no resourceVersion to carry."""
    del form.fields["resource_version"]
    return form


def expected_version(form) -> int | None:
    """The resourceVersion the edit form was rendered with: None if it carries none (no
    check, as the API without one); a malformed one is refused (nothing is written) with the
    API's message, never taken as no check."""
    raw = (form.cleaned_data.get("resource_version") or "").strip()
    if not raw:
        return None
    expected = version(raw)
    if expected is None:
        raise ValidationFailed.one(
            "resourceVersion", "must be a resourceVersion from a previous read; reload the page"
        )
    return expected
