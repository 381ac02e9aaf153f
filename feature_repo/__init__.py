"""Feast definitions only (entities, sources, views, services): `feast apply` imports each file."""
