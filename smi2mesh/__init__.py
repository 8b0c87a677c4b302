"""smi2mesh: translate Service Mesh Interface policy into mesh-native objects.

The public entry point is :func:`smi2mesh.translate.translate`; the CLI and the
operator both call it.
"""

__version__ = "0.1.0"
