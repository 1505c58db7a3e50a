"""Explainers (registry ``EXPLAINERS``)."""
