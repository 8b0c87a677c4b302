"""The oracle itself must be right before it can judge translators."""

from __future__ import annotations

from smi2mesh import yamlio
from smi2mesh.inputs import parse_documents
from smi2mesh.model import Identity
from tests.access import HttpRequest, Request, smi_allows
from tests.golden import SHARED_CASES


def _inputs(name: str):  # type: ignore[no-untyped-def]
    return parse_documents(yamlio.read_sources([str(SHARED_CASES / name)]))


def test_v1alpha1_port_and_path() -> None:
    inputs = _inputs("access-v1alpha1-port.yaml")
    prom = Identity("prometheus", "monitoring")
    labels = {"app": "service-b", "version": "v1"}

    def req(port: int, method: str, path: str, src: Identity = prom) -> Request:
        return Request(src, "default", "service-b", labels, "TCP", port, HttpRequest(method, path))

    assert smi_allows(inputs, req(9091, "GET", "/metrics"))
    assert smi_allows(inputs, req(9091, "GET", "/metrics/extra"))  # prefix-anchored
    assert not smi_allows(inputs, req(8080, "GET", "/metrics"))  # port kept
    assert not smi_allows(inputs, req(9091, "POST", "/metrics"))
    assert not smi_allows(inputs, req(9091, "GET", "/x/metrics"))
    assert not smi_allows(inputs, req(9091, "GET", "/metrics", Identity("other", "monitoring")))


def test_l7_scoped_by_tcp_route_and_headers() -> None:
    inputs = _inputs("access-v1alpha3-l7-scoped.yaml")
    src = Identity("reviews", "books")

    def req(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> Request:
        return Request(src, "books", "ratings", {"app": "ratings"}, "TCP", port,
                       HttpRequest(method, path, headers or {}))

    assert smi_allows(inputs, req(9080, "GET", "/ratings/7"))
    assert not smi_allows(inputs, req(9081, "GET", "/ratings/7"))
    assert smi_allows(inputs, req(9080, "GET", "/health"))
    assert not smi_allows(inputs, req(9080, "GET", "/healthz"))  # "$" anchors the end
    assert smi_allows(inputs, req(9080, "PUT", "/internal/x", {"x-caller": "svc-reviews"}))
    assert not smi_allows(inputs, req(9080, "PUT", "/internal/x", {"x-caller": "svc-reviews2"}))
    assert not smi_allows(inputs, req(9080, "PUT", "/internal/x"))


def test_l4_udp_and_unresolved() -> None:
    inputs = _inputs("access-v1alpha3-l4.yaml")
    client = Identity("default", "apps")
    labels = {"app": "dns-cache"}
    assert smi_allows(inputs, Request(client, "infra", "dns-cache", labels, "UDP", 53))
    assert not smi_allows(inputs, Request(client, "infra", "dns-cache", labels, "UDP", 5353))
    assert smi_allows(inputs, Request(client, "infra", "dns-cache", labels, "TCP", 5353))
    shipper = Identity("log-shipper", "infra")
    assert smi_allows(inputs, Request(shipper, "infra", "dns-cache", labels, "TCP", 1234))
    assert not smi_allows(inputs, Request(shipper, "infra", "dns-cache", labels, "UDP", 53))
    unresolved = _inputs("access-unresolved.yaml")
    checkout = Identity("checkout", "shop")
    http = HttpRequest("GET", "/orders")
    assert not smi_allows(unresolved, Request(checkout, "shop", "orders", {}, "TCP", 80, None))
    assert smi_allows(unresolved, Request(checkout, "shop", "orders", {}, "TCP", 80, http))
    assert not smi_allows(unresolved, Request(checkout, "shop", "orders", {}, "TCP", 80,
                                              HttpRequest("DELETE", "/orders")))
