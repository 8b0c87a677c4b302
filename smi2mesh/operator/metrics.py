"""Prometheus metrics of ``smi2mesh run``, in a registry of their own (so tests can run several operators)."""

from __future__ import annotations

import prometheus_client as prom


class Metrics:
    """Every metric the operator exports."""

    def __init__(self) -> None:
        self.registry = prom.CollectorRegistry()
        self.reconciles = prom.Counter("smi2mesh_reconciles_total", "Namespace reconciles",
                                       ["result"], registry=self.registry)
        self.errors = prom.Counter("smi2mesh_reconcile_errors_total", "Failed reconciles by reason",
                                   ["reason"], registry=self.registry)
        self.duration = prom.Histogram(
            "smi2mesh_reconcile_duration_seconds", "Time to reconcile one namespace",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.writes = prom.Counter("smi2mesh_api_writes_total",
                                   "Writes the API server accepted, by verb (create, apply, "
                                   "delete, status, event)", ["verb"], registry=self.registry)
        self.write_errors = prom.Counter("smi2mesh_api_write_errors_total",
                                         "Writes the API server refused or never answered, by "
                                         "verb and HTTP status (0: no answer)", ["verb", "code"],
                                         registry=self.registry)
        self.managed = prom.Gauge("smi2mesh_managed_objects", "Generated objects by kind",
                                  ["kind"], registry=self.registry)
        self.findings = prom.Gauge("smi2mesh_findings", "Current findings by reason",
                                   ["reason"], registry=self.registry)
        self.throttled = prom.Counter("smi2mesh_drift_repairs_throttled_total",
                                      "Drift repairs postponed because another writer keeps "
                                      "changing the object", registry=self.registry)
        self.leader = prom.Gauge("smi2mesh_leader", "1 while this replica holds the leader Lease "
                                 "(or runs without leader election), else 0", registry=self.registry)
        self.leader_transitions = prom.Counter("smi2mesh_leader_transitions",
                                               "Times this replica became the leader",
                                               registry=self.registry)
