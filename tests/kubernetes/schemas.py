"""Strict validation against the real Kubernetes schemas that ``kubernetes-validate`` ships,
for the two newest Kubernetes versions it has. Validators are cached per schema (loading one
costs more than using it)."""

import functools
import re

import jsonschema
from kubernetes_validate import utils
from packaging.version import Version
from referencing import Registry, Resource


@functools.cache
def newest_versions(count: int = 2) -> tuple[str, ...]:
    return tuple(sorted(set(utils.all_versions()), key=Version)[-count:])


def _schema_name(obj: dict) -> str:
    api_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
    return f"{obj['kind'].lower()}-{api_version}.json"


@functools.cache
def _validator(version: str, schema_name: str):
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    schema = utils.schema_contents(f"{folder}/{schema_name}", version)
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def errors(obj: dict, version: str) -> list[str]:
    """Every schema error of ``obj`` as ``path: message`` (empty when it is valid)."""
    try:
        validator = _validator(version, _schema_name(obj))
    except FileNotFoundError:
        return [f"no schema for {obj.get('apiVersion')}/{obj.get('kind')} in Kubernetes {version}"]
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(obj)
    ]
