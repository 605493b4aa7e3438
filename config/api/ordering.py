"""``?ordering=-createdAt``: ordering by the API's own (camelCase) field names."""

from rest_framework.filters import OrderingFilter


class AliasOrderingFilter(OrderingFilter):
    """Accepts the names a view lists in ``ordering_aliases`` ({api name: model field})."""

    def get_valid_fields(self, queryset, view, context=None):
        aliases = getattr(view, "ordering_aliases", {})
        return [(api_name, api_name) for api_name in aliases]

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        aliases = getattr(view, "ordering_aliases", {})
        if not ordering:
            return ordering
        result = []
        for term in ordering:
            descending = term.startswith("-")
            field = aliases.get(term.lstrip("-"), term.lstrip("-"))
            result.append(f"-{field}" if descending else field)
        return result
