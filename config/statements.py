"""Statements: a hot path's queries compiled to SQL once per process, then only run.

Django builds a queryset's ``Query`` and compiles it to SQL on every evaluation. For the
one-row queries on a change's way to the gateways (the reconcile's critical section) that
costs two to three times the database's round trip: ~0.7 ms of Python against ~0.35 ms on
the wire, measured on the shared 2-core machines. A ``Statement`` is written as a queryset,
with ``Arg`` where a value goes in; its first run compiles it (per database vendor), and
every later run sends the same SQL with the values filled in and reads the rows with
Django's own converters (a JSON column decoded, a SQLite date parsed), as the queryset
would.

    ROUTES = Statement(
        lambda: Route.objects.filter(gateway_id=Arg("gateway")).values_list("pk", "name")
    )
    ROUTES.rows(gateway=7)                        # [(1, "api"), ...]

    BACKENDS = Statement(
        lambda names: Backend.objects.filter(tenant_id=Arg("tenant"), name__in=names)
    )
    BACKENDS.objects(tenant=3, names=["a", "b"])  # [<Backend a>, <Backend b>]

A list argument (``names``) is the values of an ``IN`` and gives the builder one ``Arg`` per
element: a statement is compiled once per list length up to ``LIST_LENGTHS``, and a longer
list is padded with its last value up to the next power of two (an ``IN`` answers the same),
so 50 names and 60 run the same SQL; lists longer than ``LONGEST_LIST`` are compiled on
every run, as a queryset would be. Values are sent as given: ids and strings (a value that
needs the field's preparation has no place in a statement). Only plain querysets: rows of
``values_list`` in their select order, model instances (with ``select_related`` and
deferred fields, without ``prefetch_related``, annotations or the related objects a related
manager would set).
"""

import threading
from collections.abc import Callable
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import Expression, QuerySet
from django.db.models.query import ModelIterable, get_related_populators
from django.db.transaction import TransactionManagementError

LIST_LENGTHS = 16  # compiled once per length up to this; longer, per power of two
LONGEST_LIST = 1024  # longer lists run as a fresh queryset (not compiled once per length)


def _padded(values) -> list:
    """An ``IN``'s values, padded with the last one to the length compiled for them."""
    values = list(values)
    length = len(values)
    if length <= LIST_LENGTHS or length > LONGEST_LIST:
        return values
    return values + values[-1:] * ((1 << (length - 1).bit_length()) - length)


class Arg(Expression):
    """Where a statement's value ``name`` goes (``index``: its element of a list argument)."""

    def __init__(self, name: str, index: int | None = None):
        super().__init__()
        self.name, self.index = name, index

    def as_sql(self, compiler, connection):
        return "%s", [self]

    def value(self, args: dict) -> Any:
        found = args[self.name]
        return found if self.index is None else found[self.index]


class _Compiled:
    def __init__(self, queryset: QuerySet, alias: str):
        compiler = queryset.query.get_compiler(using=alias)
        self.sql, params = compiler.as_sql()
        self.slots = [(p, True) if isinstance(p, Arg) else (p, False) for p in params]
        fields = [column for column, _, _ in compiler.select[: compiler.col_count]]
        self.converters = list(compiler.get_converters(fields).items())
        self.locks = queryset.query.select_for_update
        self.model = None
        if queryset._iterable_class is ModelIterable:
            info = compiler.klass_info
            if compiler.annotation_col_map or queryset._known_related_objects:
                raise ValueError("a statement makes plain model instances only")
            self.model = info["model"]
            first, last = info["select_fields"][0], info["select_fields"][-1] + 1
            self.span = slice(first, last)
            self.attnames = [s[0].target.attname for s in compiler.select[self.span]]
            self.populators = get_related_populators(info, compiler.select, alias)

    def fetch(self, alias: str, args: dict) -> list[list | tuple]:
        params = [slot.value(args) if is_arg else slot for slot, is_arg in self.slots]
        connection = connections[alias]
        if self.locks and connection.get_autocommit():  # as Django says when it compiles
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if not self.converters:
            return rows
        converted = []
        for row in rows:
            row = list(row)
            for position, (functions, expression) in self.converters:
                value = row[position]
                for function in functions:
                    value = function(value, expression, connection)
                row[position] = value
            converted.append(row)
        return converted


class Statement:
    """A queryset compiled on first use and run many times (module docstring)."""

    def __init__(self, build: Callable[..., QuerySet], using: str = "default"):
        self.build = build
        self.using = using
        code = build.__code__
        self.lists = code.co_varnames[: code.co_argcount]  # the list arguments' names
        self._compiled: dict[tuple, _Compiled | None] = {}
        self._lock = threading.Lock()

    def _compiled_for(self, args: dict) -> "_Compiled | None":
        """The compiled statement for these list lengths (None: no rows, whatever the values:
        an empty list in an ``IN``); ``args``' lists are padded (``_padded``) in place.
        Lists longer than ``LONGEST_LIST`` are compiled anew each time."""
        for name in self.lists:
            args[name] = _padded(args[name])
        lengths = tuple(len(args[name]) for name in self.lists)
        key = (connections[self.using].vendor, lengths)
        if key in self._compiled:
            return self._compiled[key]
        lists = {
            name: [Arg(name, index) for index in range(length)]
            for name, length in zip(self.lists, lengths, strict=True)
        }
        try:
            compiled = _Compiled(self.build(**lists), self.using)
        except EmptyResultSet:
            compiled = None
        if max(lengths, default=0) <= LONGEST_LIST:
            with self._lock:
                compiled = self._compiled.setdefault(key, compiled)
        return compiled

    def rows(self, **args) -> list[tuple]:
        """The rows, as tuples in the select's order (``values_list`` querysets)."""
        compiled = self._compiled_for(args)
        if compiled is None:
            return []
        return [tuple(row) for row in compiled.fetch(self.using, args)]

    def objects(self, **args) -> list:
        """Model instances, as the queryset would make them."""
        compiled = self._compiled_for(args)
        if compiled is None:
            return []
        if compiled.model is None:
            raise TypeError("this statement selects values, not model instances: rows()")
        made = []
        model, span, attnames, alias = compiled.model, compiled.span, compiled.attnames, self.using
        for row in compiled.fetch(alias, args):
            instance = model.from_db(alias, attnames, row[span])
            for populator in compiled.populators:
                populator.populate(row, instance)
            made.append(instance)
        return made

    def first(self, **args):
        """The first model instance, or None (the builder says which is first, and limits)."""
        found = self.objects(**args)
        return found[0] if found else None
