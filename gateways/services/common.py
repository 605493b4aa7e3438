"""What every spec resource's services share: locking, creating, storing a new spec."""

import functools

from django.db import IntegrityError, models, transaction

from config.api.versioning import check_version
from config.errors import Conflict, NotFound
from config.statements import Arg, Statement


def lock(model: type[models.Model], pk: int, *related: str):
    """The row, locked until the transaction ends (joined rows are not locked).

    NotFound if it was deleted since the caller read it (a concurrent delete committed first).
    """
    row = _lock_statement(model, related).first(pk=pk)
    if row is None:
        raise NotFound(f"the {model._meta.verbose_name} was deleted meanwhile")
    return row


# Every write takes a lock, and a reconcile takes its gateway's on every change: the SQL is
# compiled once per (model, joined rows) (config/statements.py).
@functools.cache
def _lock_statement(model: type[models.Model], related: tuple[str, ...]) -> Statement:
    return Statement(
        lambda: (
            model.objects.select_for_update(of=("self",))
            .select_related(*related)
            .filter(pk=Arg("pk"))
        )
    )


def lock_checked(model, pk: int, expected: int | None, what: str, *related: str):
    """The locked row, or StaleVersion if ``expected`` is not its resourceVersion."""
    row = lock(model, pk, *related)
    check_version(row.resource_version, expected, f"{what} {row.name}")
    return row


def create_unique(model, duplicate_message: str, **fields):
    """Creates the row, or Conflict if its name is taken (checked, then enforced by the DB)."""
    scope = {key: value for key, value in fields.items() if key in ("tenant", "gateway")}
    if model.objects.filter(name=fields["name"], **scope).exists():
        raise Conflict(duplicate_message)
    try:
        with transaction.atomic():
            return model.objects.create(**fields)
    except IntegrityError:
        raise Conflict(duplicate_message) from None


def store_spec(row, spec: dict, status: dict, **columns) -> None:
    """A new spec: generation and resourceVersion move on, status is recomputed."""
    row.spec = spec
    for column, value in columns.items():
        setattr(row, column, value)
    row.generation += 1
    row.resource_version += 1
    row.status = status
    row.save()


def store_status(row, status: dict) -> bool:
    """A derived status change (no spec change): only resourceVersion moves. True if changed."""
    if status == row.status:
        return False
    row.status = status
    row.resource_version += 1
    row.save(update_fields=["status", "resource_version", "updated_at"])
    return True
