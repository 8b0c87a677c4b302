"""The smi2mesh operator (``smi2mesh run``): reconciles SMI objects into mesh objects.

Layout:

* ``config``    -- flags and environment
* ``kube``      -- the few API calls it makes (SSA, create, delete, status, events)
* ``store``     -- an in-memory cache of everything watched, and dirty namespaces
* ``reconcile`` -- the level-based plan for one namespace: translate, diff, prune, status
* ``runtime``   -- kopf wiring, the reconcile loop, metrics and health endpoints

Translation is the same :func:`smi2mesh.translate.translate` the CLI calls.
"""
