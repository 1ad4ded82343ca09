"""Every /api/v1 route x every scope: only the route's one declared scope gets past 403.

Generated from the app's route table, so a new route is covered the day it is added —
and a route that declares no scope fails here (only GET /me may go without).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tests.helpers import create_account, create_key
from wacrm.api_keys.scopes import ALL_SCOPES, Scope
from wacrm.app import create_app
from wacrm.settings import Settings

NO_SCOPE_NEEDED = {("GET", "/api/v1/me")}


def _scopes_in(dependant: Dependant) -> set[Scope]:
    found: set[Scope] = set()
    for sub in dependant.dependencies:
        scope = getattr(sub.call, "required_scope", None)
        if scope is not None:
            found.add(scope)
        found |= _scopes_in(sub)
    return found


def _api_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """(full path, route), looking inside included routers (FastAPI keeps them nested)."""
    found = []
    for route in routes:
        if hasattr(route, "original_router"):
            found += _api_routes(
                route.original_router.routes, prefix + route.include_context.prefix
            )
        elif isinstance(route, APIRoute):
            found.append((prefix + route.path, route))
    return found


def v1_routes() -> list[tuple[str, str, Scope | None]]:
    app = create_app(Settings(env="test", secret_key="x", database_url="sqlite+aiosqlite://"))
    routes = []
    for path, route in _api_routes(app.routes):
        if not path.startswith("/api/v1"):
            continue
        scopes = _scopes_in(route.dependant)
        for method in sorted(route.methods - {"HEAD"}):
            assert len(scopes) <= 1, f"{method} {path} declares several scopes: {scopes}"
            routes.append((method, path, next(iter(scopes), None)))
    return routes


ROUTES = v1_routes()


def test_every_route_declares_exactly_one_scope():
    undeclared = [
        (method, path)
        for method, path, scope in ROUTES
        if scope is None and (method, path) not in NO_SCOPE_NEEDED
    ]
    assert undeclared == [], f"routes without a declared scope: {undeclared}"
    assert len(ROUTES) >= 2


def _fill(path: str) -> str:
    parts = []
    for part in path.split("/"):
        parts.append(str(uuid.uuid4()) if part.startswith("{") else part)
    return "/".join(parts)


BODY: dict[str, Any] = {}


@pytest.mark.parametrize(
    ("method", "path", "scope"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
async def test_only_the_declared_scope_passes(client, db, method, path, scope):
    account = await create_account(db)
    url = _fill(path)
    keys = {"none": await create_key(db, account.id, scopes=[], name="none")}
    for each in ALL_SCOPES:
        keys[each.value] = await create_key(db, account.id, scopes=[each], name=each.value)

    for name, key in keys.items():
        response = await client.request(method, url, headers=key.headers, json=BODY)
        allowed = scope is None or name == scope.value
        if allowed:
            assert response.status_code not in (401, 403), (name, response.text)
        else:
            assert response.status_code == 403, (name, response.status_code, response.text)
            error = response.json()["error"]
            assert error["code"] == "forbidden"
            assert scope is not None and scope.value in error["message"]
