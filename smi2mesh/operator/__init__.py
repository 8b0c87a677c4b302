"""The kopf operator (``smi2mesh run``) lives here.

It is built in a later step; until then this package holds no behaviour, and
the CLI does not offer ``run``.
"""
