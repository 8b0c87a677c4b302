"""Tests of the Helm chart (charts/smi2mesh) and the container image definition."""
