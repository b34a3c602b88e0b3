"""Bad input never reaches a 500: every API route, walked from the URL map.

The routes are not listed by hand: they are read from Django's resolver, so a
route added later is covered without touching this file. For each one, as an
admin (so that permissions let the request reach the parsing and the
database), with real objects behind the path:

- every write (POST, PUT, PATCH) with a JSON body nested 1,000 deep: 400;
- every read with ``?limit=99999999999999999999``, ``?limit=abc`` and a huge
  ``?offset=``: never 500, and a paginated list caps the limit and answers 400
  to a malformed one;
- every path with an id, the id replaced by a non-integer or a huge number:
  404 or 400.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern
from rest_framework.test import APIClient

from governance.lineage import graph
from governance.models.pii import PiiScan
from pedigree.pagination import BoundedLimitOffsetPagination
from serving.models import Consumer
from tests.conftest import api_client_for

DEEP_JSON = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000
HUGE = "99999999999999999999"
WRITE_METHODS = ("post", "put", "patch")
# Routes whose body is not JSON to parse: an upload takes the body as the data
# file itself (refused for its own reasons); a reload or a cancel takes no body.
BODY_IS_A_FILE = {"dataset-version-list"}
BODYLESS = {"policy-reload", "pii-scan-cancel"}


@dataclass(frozen=True)
class Route:
    """One API URL pattern, with the HTTP methods its view answers."""

    name: str
    route: str
    kwargs: tuple[str, ...]
    methods: tuple[str, ...]
    actions: dict[str, str] | None

    def is_list(self) -> bool:
        """A paginated list: a viewset's ``list`` action, or a generic view with a pagination class."""
        if self.actions is not None:
            return self.actions.get("get") == "list"
        return False


def _view_methods(pattern: URLPattern) -> tuple[tuple[str, ...], dict[str, str] | None]:
    callback = pattern.callback
    actions = getattr(callback, "actions", None)
    if actions is not None:
        return tuple(sorted(actions)), dict(actions)
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:
        return (), None
    names = getattr(view_class, "http_method_names", [])
    return tuple(m for m in names if m not in {"options", "head", "trace"} and hasattr(view_class, m)), None


def _allowed(pattern: URLPattern, methods: tuple[str, ...]) -> tuple[str, ...]:
    view_class = getattr(pattern.callback, "cls", None)
    names = getattr(view_class, "http_method_names", None) or methods
    return tuple(method for method in methods if method in names)


def _walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def api_routes() -> list[Route]:
    """Every named route under /api/ (without DRF's ``.json`` format-suffix twins)."""
    routes: dict[str, Route] = {}
    for text, pattern in _walk(get_resolver().url_patterns, ""):
        if not pattern.name or "format" in text or not text.lstrip("^").startswith("api/"):
            continue
        raw = pattern.pattern
        names = tuple(raw.converters) if isinstance(raw, RoutePattern) else tuple(raw.regex.groupindex)
        methods, actions = _view_methods(pattern)
        methods = _allowed(pattern, methods)
        if methods:
            routes.setdefault(pattern.name, Route(pattern.name, text, names, methods, actions))
    return sorted(routes.values(), key=lambda route: route.name)


ROUTES = api_routes()


def test_the_walk_finds_the_api_routes():
    """The walk itself is checked: the routes of every API app are in it."""
    names = {route.name for route in ROUTES}
    assert {"dataset-list", "dataset-version-list", "pii-reviews", "lineage-node-detail", "consumer-list",
            "policy-decide", "policy-decision-list", "schema"} <= names, sorted(names)
    assert len([route for route in ROUTES if set(route.methods) & set(WRITE_METHODS)]) >= 10
    assert len([route for route in ROUTES if route.is_list()]) >= 5


@pytest.fixture
def world(root: User, claims_dataset: Any, make_version: Any) -> dict[str, str]:
    """Real objects for every kind of path parameter."""
    version = make_version(claims_dataset)
    node = graph.node_for_dataset_version(version)
    consumer = Consumer.objects.create(name="web-frontend", region="us", owner=root)
    scan = PiiScan.objects.create(version=version, config_digest="0" * 64)
    return {
        "dataset_name": claims_dataset.name,
        "number": str(version.number),
        "scan_id": str(scan.pk),
        "redaction_id": "1",
        "name:consumers": consumer.name,
        "name:datasets": claims_dataset.name,
        "pk:lineage/nodes": str(node.pk),
        "pk:versions": str(version.pk),
        "pk": "1",
    }


SENTINEL = "987654321"  # fits every converter; replaced by the bad value after reversing


def _url(route: Route, world: dict[str, str], **override: str) -> str:
    kwargs = {}
    for name in route.kwargs:
        # "pk:lineage/nodes": the value of pk on the routes under lineage/nodes/
        key = next((k for k in world if k.startswith(f"{name}:") and k.split(":", 1)[1] in route.route), name)
        kwargs[name] = SENTINEL if name in override else world[key]
    url = reverse(route.name, kwargs=kwargs)
    for value in override.values():  # the converters refuse some bad values: put them in by hand
        url = url.replace(f"/{SENTINEL}/", f"/{value}/", 1)
    return url


def _describe(response: Any) -> str:
    body = response.content[:300].decode(errors="replace")
    return f"{response.status_code} {body}"


@pytest.fixture
def admin_client(root: User) -> APIClient:
    return api_client_for(root)


@pytest.mark.django_db
@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT], ids=["array", "object"])
def test_json_nested_1000_deep_is_a_400_on_every_write_route(admin_client, world, body):
    failures = []
    named_the_nesting = 0
    for route in ROUTES:
        for method in set(route.methods) & set(WRITE_METHODS):
            response = getattr(admin_client, method)(_url(route, world), data=body, content_type="application/json")
            where = f"{method.upper()} {route.route}"
            if route.name in BODYLESS and response.status_code < 300:
                continue
            if response.status_code != 400:
                failures.append(f"{where}: {_describe(response)}")
            elif "deep" in response.json()["error"]["message"]:
                named_the_nesting += 1
            elif route.name not in BODY_IS_A_FILE:
                failures.append(f"{where}: 400 without naming the nesting: {_describe(response)}")
    assert not failures, "\n".join(failures)
    assert named_the_nesting >= 10


@pytest.mark.django_db
def test_a_huge_limit_is_capped_on_every_list(admin_client, world):
    failures = []
    for route in ROUTES:
        if "get" not in route.methods:
            continue
        for limit in (HUGE, "9" * 5000):
            response = admin_client.get(_url(route, world), {"limit": limit})
            if response.status_code >= 500:
                failures.append(f"GET {route.route}?limit={limit[:30]}: {_describe(response)}")
            elif route.is_list() and response.status_code != 200:
                failures.append(f"GET {route.route}?limit={limit[:30]} (a list): {_describe(response)}")
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [{"limit": "abc"}, {"limit": "-1"}, {"limit": "0"}, {"limit": "1e3"}, {"offset": HUGE + HUGE}, {"offset": "x"}],
    ids=["limit-word", "limit-negative", "limit-zero", "limit-float", "offset-huge", "offset-word"],
)
def test_a_malformed_limit_or_offset_is_a_400_on_every_list(admin_client, world, query):
    failures = []
    for route in ROUTES:
        if "get" not in route.methods:
            continue
        response = admin_client.get(_url(route, world), query)
        if response.status_code >= 500:
            failures.append(f"GET {route.route}?{query}: {_describe(response)}")
        elif route.is_list() and response.status_code != 400:
            failures.append(f"GET {route.route}?{query} (a list): {_describe(response)}")
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_the_list_limit_is_capped_at_the_maximum(admin_client, world, claims_dataset, make_version):
    response = admin_client.get("/api/v1/datasets/", {"limit": HUGE})
    assert response.status_code == 200
    next_url = response.json()["next"]
    assert next_url is None or f"limit={BoundedLimitOffsetPagination.max_limit}" in next_url
    assert admin_client.get("/api/v1/datasets/", {"limit": "abc"}).json()["error"]["field"] == "limit"


@pytest.mark.django_db
@pytest.mark.parametrize("bad_id", ["abc", HUGE, "-1", "1.5"])
def test_a_non_integer_or_huge_id_is_a_404_or_400_on_every_route_with_an_id(admin_client, world, bad_id):
    failures = []
    checked = 0
    for route in ROUTES:
        ids = [name for name in route.kwargs if name in {"pk", "number", "scan_id", "redaction_id"}]
        for name in ids:
            url = _url(route, world, **{name: bad_id})
            for method in route.methods:
                kwargs = {"data": "{}", "content_type": "application/json"} if method in WRITE_METHODS else {}
                response = getattr(admin_client, method)(url, **kwargs)
                checked += 1
                if response.status_code not in {400, 404, 405}:
                    failures.append(f"{method.upper()} {url}: {_describe(response)}")
    assert checked >= 20
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_an_unknown_api_url_is_a_json_404_without_the_url_map(admin_client):
    response = admin_client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert b"URLconf" not in response.content and b"api/v1/" not in response.content


@pytest.mark.django_db
def test_an_unknown_page_is_a_plain_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/plain")
    assert b"URLconf" not in response.content and b"admin/" not in response.content


def test_an_unhandled_error_is_a_plain_500_without_source_or_settings(rf):
    from pedigree.api import server_error

    api = server_error(rf.get("/api/v1/datasets/"))
    page = server_error(rf.get("/admin/"))
    assert api.status_code == page.status_code == 500
    assert json.loads(api.content)["error"]["code"] == "server_error"
    assert page["Content-Type"].startswith("text/plain")
    for response in (api, page):
        assert b"Traceback" not in response.content and b"SECRET_KEY" not in response.content


@pytest.mark.django_db
def test_other_numeric_query_parameters_never_answer_500(admin_client, world):
    """Filters and options that take numbers (?depth=, ?number=, ...) with a huge or non-numeric value."""
    failures = []
    for name in ("depth", "number", "size_bytes", "record_count"):
        for value in (HUGE, "abc"):
            for route in ROUTES:
                if "get" not in route.methods:
                    continue
                response = admin_client.get(_url(route, world), {name: value})
                if response.status_code >= 500:
                    failures.append(f"GET {route.route}?{name}={value}: {_describe(response)}")
    assert not failures, "\n".join(failures)
