# Container image of the smi2mesh operator (charts/smi2mesh runs it).
# Build: docker build -t ghcr.io/smi2mesh/smi2mesh:$(version) .
# The same base image in both stages, so the venv's python symlink stays valid.

# ---- builder: installs the project into a venv, the way README.md installs it.
FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Project metadata first, source second: keeps the layer order obvious for reviewers;
# dependencies are resolved from pyproject.toml by `pip install .`.
COPY pyproject.toml README.md ./
COPY smi2mesh ./smi2mesh

RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/python -c "import smi2mesh, kopf, re2"

# ---- runtime: only the interpreter and the installed venv; no compilers, no pip cache.
FROM python:3.11.11-slim-bookworm

LABEL org.opencontainers.image.title="smi2mesh" \
      org.opencontainers.image.description="Translates SMI objects into mesh-native objects" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}"

COPY --from=builder /opt/venv /opt/venv

# Numeric non-root user, so Kubernetes can verify runAsNonRoot without /etc/passwd.
USER 65532:65532
WORKDIR /tmp

# 8080: Prometheus /metrics; 8081: /healthz and /readyz.
EXPOSE 8080 8081

ENTRYPOINT ["smi2mesh", "run"]
