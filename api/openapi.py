"""The OpenAPI 3.1 document, built from the routes' `endpoint` specs and msgspec types.

A route without a spec still appears (with a generic description), and a test checks that
every route has one, so the document never silently misses part of the API.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Route, WebSocketRoute

from api import openapi_rules as strict
from core.http import endpoint_spec

_PARAM_RE = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def build_document(routes: Sequence[BaseRoute], *, version: str,
                   currencies: Sequence[str] = ("USD",)) -> dict[str, Any]:
    types: list[Any] = []
    bodies: list[Any] = []
    operations: list[tuple[str, str, Any, Any]] = []
    for route in routes:
        if isinstance(route, Route):
            spec = endpoint_spec(route.endpoint)
            for method in sorted((route.methods or set()) - {"HEAD"}):
                operations.append((route.path, method.lower(), spec, route))
                if spec is not None:
                    if spec.body is not None:
                        types.append(spec.body)
                        bodies.append(spec.body)
                    types.extend(t for t in spec.responses.values() if t is not None)
        elif isinstance(route, WebSocketRoute):
            operations.append((route.path, "get", None, route))
    (_, components) = msgspec.json.schema_components(
        list(dict.fromkeys(types)), ref_template="#/components/schemas/{name}"
    )
    inputs = {getattr(t, "__name__", "") for t in bodies}
    for component, schema in components.items():
        strict.tighten(schema, request=component in inputs)
    strict.ledger_bodies(components, sorted(currencies))
    components["Problem"] = _PROBLEM_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for path, method, spec, route in operations:
        paths.setdefault(_PARAM_RE.sub(r"{\1}", path), {})[method] = _operation(
            path, spec, route, sorted(currencies))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Souk",
            "version": version,
            "description": "Live-commerce and auction server. Errors are RFC 9457 "
            "application/problem+json with a stable `code`.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _ref(type_: Any) -> dict[str, Any]:
    (schema,), _ = msgspec.json.schema_components(
        [type_], ref_template="#/components/schemas/{name}"
    )
    strict.tighten(schema)
    return schema


def _parameters(path: str, template: str, spec: Any, currencies: list[str]) -> list[Any]:
    """The operation's path parameters, then its query parameters and Idempotency-Key."""
    params: list[Any] = [
        {"name": name, "in": "path", "required": True, "schema": strict.path_schema(name)}
        for name in _PARAM_RE.findall(path)
    ]
    if spec is None:
        return params
    params += [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": strict.query_schema(template, name, currencies),
            "description": text,
        }
        for name, text in spec.query.items()
    ]
    if spec.idempotent_key:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": template in strict.IDEMPOTENCY_REQUIRED,
                "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
            }
        )
    return params


def _responses(spec: Any, route: BaseRoute, template: str) -> dict[str, Any]:
    """The documented responses, then a Problem for every error status the route can give."""
    responses: dict[str, Any] = {}
    for status, type_ in spec.responses.items():
        entry: dict[str, Any] = {"description": "Success" if status < 400 else "Failure"}
        if type_ is not None:
            entry["content"] = {"application/json": {"schema": _ref(type_)}}
        responses[str(status)] = entry
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    method = next((m.lower() for m in sorted(getattr(route, "methods", None) or {"GET"})
                   if m != "HEAD"), "get")
    extra = strict.extra_errors(has_body=spec.body is not None, auth=spec.auth, path=template,
                                method=method)
    for status in sorted({*spec.errors, *extra, 500}):
        responses.setdefault(str(status), {"description": "Problem", "content": problem})
    return responses


def _operation(path: str, spec: Any, route: BaseRoute, currencies: list[str]) -> dict[str, Any]:
    template = _PARAM_RE.sub(r"{\1}", path)
    params = _parameters(path, template, spec, currencies)
    if spec is None:
        summary = "Websocket endpoint" if isinstance(route, WebSocketRoute) else "Undocumented"
        return {
            "summary": summary,
            "parameters": params,
            "responses": {"default": {"description": "See README"}},
        }
    op: dict[str, Any] = {"summary": spec.summary, "tags": list(spec.tags)}
    if params:
        op["parameters"] = params
    if spec.auth:
        op["security"] = [{"bearer": []}]
        if spec.roles:
            op["description"] = "Roles: " + ", ".join(spec.roles)
    if spec.body is not None:
        op["requestBody"] = {
            "required": spec.body_required,
            "content": {spec.body_media_type: {"schema": _ref(spec.body)}},
        }
    op["responses"] = _responses(spec, route, template)
    return op
