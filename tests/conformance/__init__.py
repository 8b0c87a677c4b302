"""Conformance tier: generated objects are checked by a real kube-apiserver."""
