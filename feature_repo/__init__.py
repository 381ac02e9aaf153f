"""Feast definitions only: entities, sources, views and services. `feast apply` imports every file."""
