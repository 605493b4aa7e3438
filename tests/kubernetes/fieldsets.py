"""Field ownership for the API server test double's server-side apply (part of the double).

A simplified model of Kubernetes' managed fields: each manager owns the leaf paths it last
applied (maps are walked; lists and scalars are leaves). An apply merges the body into the
object, then removes the paths the manager owned before and no longer applies, unless another
manager owns them too — which is what makes handing a field to another owner (an HPA's
``spec.replicas``) matter, as it does on a real cluster.
"""

import copy

Path = tuple[str, ...]


def leaves(obj: dict, prefix: Path = ()) -> set[Path]:
    found = set()
    for key, value in obj.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            found |= leaves(value, path)
        else:
            found.add(path)
    return found


def merge(base: dict, patch: dict) -> dict:
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def remove(obj: dict, path: Path) -> None:
    node = obj
    for key in path[:-1]:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    node.pop(path[-1], None)


def fields_v1(paths: set[Path]) -> dict:
    """The ``fieldsV1`` form (``{"f:spec": {"f:replicas": {}}}``) of a set of paths."""
    tree: dict = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


def owns(fields: dict, path: Path) -> bool:
    """Whether a ``fieldsV1`` tree includes ``path``."""
    node = fields
    for key in path:
        if f"f:{key}" not in node:
            return False
        node = node[f"f:{key}"]
    return True


def apply(current: dict | None, owners: dict, manager: str, body: dict) -> tuple[dict, dict]:
    """(object, owners) after ``manager`` applies ``body``; ``owners``: manager →
    (operation, paths)."""
    applied = leaves(body)
    previous = owners.get(manager, ("Apply", set()))[1]
    others = set().union(*(paths for m, (_, paths) in owners.items() if m != manager))
    result = merge(current or {}, body)
    for path in previous - applied - others:
        remove(result, path)
    return result, {**owners, manager: ("Apply", applied)}
