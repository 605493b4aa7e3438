"""Service errors onto form fields: the one place that does it.

Services validate (the forms only collect input) and raise ``config.errors`` exceptions whose
field errors carry JSON paths such as ``spec.rules[0].backendRefs[0].name``. A form declares
which path each of its fields edits; an error goes to the field whose path is the longest
prefix of the error's path, named by its whole path unless the field edits exactly that value
(``spec.rules[0].backendRefs[0].name: …`` on a field that edits the whole spec). Errors no
field owns go to the whole form.
"""

from django import forms

from config.errors import Conflict, DisallowedValue, GantryError, ValidationFailed


def _owner(path: str, fields: dict[str, str]) -> tuple[str | None, bool]:
    """(the form field, whether it edits exactly ``path``) for an error at ``path``."""
    best, best_path = None, ""
    for field, prefix in fields.items():
        exact = path == prefix
        within = path.startswith((prefix + ".", prefix + "["))
        if (exact or within) and len(prefix) >= len(best_path):
            best, best_path = field, prefix
    return best, best_path == path


def _add(form: forms.Form, fields: dict[str, str], path: str, message: str) -> None:
    field, exact = _owner(path, fields)
    if field not in form.fields:  # a field this form does not show (a name, when editing)
        field, exact = None, False
    form.add_error(field, message if exact or not path else f"{path}: {message}")


def apply_service_error(
    form: forms.Form, error: GantryError, fields: dict[str, str], conflict_field: str | None = None
) -> None:
    """Shows ``error`` on ``form``. ``fields``: form field name → the JSON path it edits
    (``{"replicas": "spec.replicas", "spec": "spec"}``). ``conflict_field``: where a Conflict
    (a name already taken) is shown."""
    if isinstance(error, ValidationFailed):
        for field_error in error.fields:
            _add(form, fields, field_error.path, field_error.message)
    elif isinstance(error, DisallowedValue):
        _add(form, fields, error.path, error.message)
    elif isinstance(error, Conflict) and conflict_field and error.code == "conflict":
        form.add_error(conflict_field, error.message)
    else:
        form.add_error(None, error.message)
