"""A seeded SMI corpus for the fault scenarios, and what the operator should make of it.

Every scenario runs the operator over a few hundred SMI objects of every kind
(TrafficSplits with matches, TrafficTargets with HTTP, TCP and UDP rules, their
HTTPRouteGroups, TCPRoutes and UDPRoutes) with Services and Deployments as
context, spread over a few namespaces. :class:`Corpus` holds the documents as
they should be on the API server now, and the last *valid* version of each, so
the expected mesh objects are always ``translate()`` of the same inputs,
including the "last good output" the operator keeps for objects turned invalid.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from smi2mesh.inputs import parse_document, parse_documents
from smi2mesh.translate import translate
from smi2mesh.translators.base import SOURCE_ANNOTATION

Doc = dict[str, Any]
DocKey = tuple[str, str, str]  # (kind, namespace, name)

SPLIT_API = "split.smi-spec.io/v1alpha4"
ACCESS_API = "access.smi-spec.io/v1alpha3"
SPECS_API = "specs.smi-spec.io/v1alpha4"
SMI_API = {"TrafficSplit": SPLIT_API, "TrafficTarget": ACCESS_API, "HTTPRouteGroup": SPECS_API,
           "TCPRoute": SPECS_API, "UDPRoute": SPECS_API}
SMI_PLURAL = {"TrafficSplit": "trafficsplits", "TrafficTarget": "traffictargets",
              "HTTPRouteGroup": "httproutegroups", "TCPRoute": "tcproutes", "UDPRoute": "udproutes"}
POLICY_KINDS = ("TrafficSplit", "TrafficTarget")
MESH = "istio"


def key_of(doc: Doc) -> DocKey:
    return doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"]


def is_smi(doc: Doc) -> bool:
    return str(doc["apiVersion"]).split("/")[0].endswith("smi-spec.io")


def problems_of(doc: Doc) -> list[str]:
    """What the operator's parser says about one document (empty: valid)."""
    _, problems = parse_document(copy.deepcopy(doc))
    return [p.render() for p in problems]


@dataclass
class Corpus:
    """The SMI state the API server should hold, and the last valid version of each object."""

    namespaces: tuple[str, ...]
    docs: dict[DocKey, Doc] = field(default_factory=dict)
    last_good: dict[DocKey, Doc] = field(default_factory=dict)

    def put(self, doc: Doc) -> Doc:
        k = key_of(doc)
        self.docs[k] = doc
        if not problems_of(doc):
            self.last_good[k] = doc
        return doc

    def remove(self, k: DocKey) -> None:
        self.docs.pop(k, None)
        self.last_good.pop(k, None)

    def invalid(self) -> dict[DocKey, list[str]]:
        """Current documents the parser rejects, with its messages."""
        return {k: p for k, d in self.docs.items() if (p := problems_of(d))}

    def smi_count(self) -> int:
        return sum(1 for d in self.docs.values() if is_smi(d))

    def expected(self) -> list[Doc]:
        """The mesh objects that should exist: translate() of the valid documents.

        An object that became invalid contributes its last valid version, because
        the operator keeps the last good output (README, "Invalid input").
        """
        bad = self.invalid()
        chosen = [self.last_good[k] if k in bad else d for k, d in self.docs.items()
                  if k not in bad or k in self.last_good]
        inputs = parse_documents((f"{'/'.join(key_of(d))}", copy.deepcopy(d)) for d in chosen)
        return list(translate(inputs, MESH).objects)

    def app_names(self, namespace: str) -> list[str]:
        return sorted(k[2] for k in self.docs if k[0] == "Service" and k[1] == namespace)


def sources_of(obj: Doc) -> list[str]:
    note = obj["metadata"].get("annotations", {}).get(SOURCE_ANNOTATION, "")
    return [s for s in note.split(",") if s]


# ---- generation ---------------------------------------------------------------------


def _meta(name: str, ns: str) -> Doc:
    return {"name": name, "namespace": ns}


def app_docs(app: str, ns: str, port: int) -> list[Doc]:
    """The Service and Deployment of one application (the context the translators read)."""
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(app, ns),
         # Headless: a ClusterIP would come from envtest's /24 service range, which the
         # scenarios' hundreds of Services would exhaust.
         "spec": {"clusterIP": "None", "selector": {"app": app},
                  "ports": [{"name": "http", "port": port}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(app, ns),
         "spec": {"selector": {"matchLabels": {"app": app}},
                  "template": {"metadata": {"labels": {"app": app, "version": "v1"}},
                               "spec": {"serviceAccountName": app,
                                        "containers": [{"name": "app", "image": f"example/{app}:1"}]}}}},
    ]


def split(app: str, ns: str, w1: int, w2: int) -> Doc:
    return {"apiVersion": SPLIT_API, "kind": "TrafficSplit", "metadata": _meta(f"{app}-split", ns),
            "spec": {"service": app,
                     "matches": [{"kind": "HTTPRouteGroup", "name": f"{app}-canary"}],
                     "backends": [{"service": f"{app}-v1", "weight": w1},
                                  {"service": f"{app}-v2", "weight": w2}]}}


def canary_group(app: str, ns: str, path: str = "/api") -> Doc:
    return {"apiVersion": SPECS_API, "kind": "HTTPRouteGroup", "metadata": _meta(f"{app}-canary", ns),
            "spec": {"matches": [{"name": "beta", "pathRegex": path, "methods": ["GET", "POST"],
                                  "headers": {"x-beta": "true"}}]}}


def api_group(app: str, ns: str, items: str = "/items") -> Doc:
    return {"apiVersion": SPECS_API, "kind": "HTTPRouteGroup", "metadata": _meta(f"{app}-api", ns),
            "spec": {"matches": [{"name": "read", "pathRegex": items, "methods": ["GET"]},
                                 {"name": "health", "pathRegex": "/healthz$"}]}}


def target(app: str, ns: str, source: tuple[str, str], udp: bool, only_read: bool) -> Doc:
    rules: list[Doc] = [{"kind": "TCPRoute", "name": f"{app}-port"}]
    http: Doc = {"kind": "HTTPRouteGroup", "name": f"{app}-api"}
    if only_read:
        http["matches"] = ["read"]
    rules.append(http)
    if udp:
        rules.append({"kind": "UDPRoute", "name": f"{app}-dns"})
    return {"apiVersion": ACCESS_API, "kind": "TrafficTarget", "metadata": _meta(f"{app}-access", ns),
            "spec": {"destination": {"kind": "ServiceAccount", "name": app, "namespace": ns},
                     "sources": [{"kind": "ServiceAccount", "name": source[1], "namespace": source[0]}],
                     "rules": rules}}


def build(prefix: str, namespaces: int = 3, apps: int = 34, seed: int = 7) -> Corpus:
    """*namespaces* x *apps* applications; each has a TrafficSplit with matches, a
    TrafficTarget with TCP and HTTP rules (every third also UDP) and their routes."""
    rnd = random.Random(seed)
    names = tuple(f"{prefix}-{i}" for i in range(namespaces))
    corpus = Corpus(names)
    for n, ns in enumerate(names):
        for i in range(apps):
            app = f"app-{i:03d}"
            port = rnd.choice([80, 8080, 9090])
            for d in app_docs(app, ns, port):
                corpus.put(d)
            corpus.put(canary_group(app, ns))
            corpus.put(split(app, ns, rnd.randint(0, 100), rnd.randint(1, 100)))
            corpus.put(api_group(app, ns))
            corpus.put({"apiVersion": SPECS_API, "kind": "TCPRoute", "metadata": _meta(f"{app}-port", ns),
                        "spec": {"matches": {"name": "http", "ports": [port]}}})
            udp = i % 3 == 0
            if udp:
                corpus.put({"apiVersion": SPECS_API, "kind": "UDPRoute",
                            "metadata": _meta(f"{app}-dns", ns),
                            "spec": {"matches": {"name": "dns", "ports": [53]}}})
            # Sources from this and the next namespace: cross-namespace identities.
            src_ns = names[(n + i % 2) % len(names)]
            corpus.put(target(app, ns, (src_ns, f"app-{(i + 1) % apps:03d}"), udp, only_read=i % 4 == 1))
    return corpus


@dataclass
class Change:
    """One write of a burst: apply *doc*, or delete *key* when doc is None."""

    key: DocKey
    doc: Doc | None

    @property
    def api_version(self) -> str:
        return SMI_API.get(self.key[0], "v1")


def burst(corpus: Corpus, seed: int, size: int = 90, deletions: bool = True) -> Iterator[Change]:
    """A burst of SMI changes of every sort, applied to *corpus* as they are yielded.

    Weight updates, route edits, deletions and re-creations, and new objects:
    what a GitOps sync or a progressive-delivery controller does.
    """
    rnd = random.Random(seed)
    # A name deleted in this burst is not created again in it: the operator loses such
    # re-creations at random (kopf handles each uid in its own worker, and Store.remove
    # drops by name whatever uid is cached); test_races.py pins that bug down
    # deterministically, and the scenarios here must not flake on it.
    deleted: set[DocKey] = set()
    for step in range(size):
        ns = rnd.choice(corpus.namespaces)
        apps = corpus.app_names(ns)
        app = rnd.choice(apps)
        kind = step % 6
        if kind in (0, 1):  # weight shift
            doc = split(app, ns, rnd.randint(0, 100), rnd.randint(1, 100))
            if key_of(doc) in deleted:
                continue
        elif kind == 2:  # the route of a canary changes
            doc = canary_group(app, ns, rnd.choice(["/api", "/v2", "/beta/.*"]))
        elif kind == 3:  # an access rule's HTTP routes change
            doc = api_group(app, ns, rnd.choice(["/items", "/items/[0-9]+", "/catalog"]))
        elif kind == 4:  # a TrafficSplit or TrafficTarget is deleted
            if not deletions:
                continue
            victim = rnd.choice(["TrafficSplit", "TrafficTarget"])
            k = (victim, ns, f"{app}-{'split' if victim == 'TrafficSplit' else 'access'}")
            if k in corpus.docs:
                deleted.add(k)
                corpus.remove(k)
                yield Change(k, None)
            continue
        else:  # a new application's policy appears (context first)
            new = f"new-{step:03d}"
            for d in app_docs(new, ns, 8080):
                corpus.put(d)
                yield Change(key_of(d), d)
            for d in (canary_group(new, ns), split(new, ns, 50, 50)):
                corpus.put(d)
                yield Change(key_of(d), d)
            continue
        corpus.put(doc)
        yield Change(key_of(doc), doc)
