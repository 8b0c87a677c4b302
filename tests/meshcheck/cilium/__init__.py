"""Python side of the Cilium checker: the Go module here builds ``cilium-check``,
and :mod:`tests.meshcheck.cilium.client` calls it."""
