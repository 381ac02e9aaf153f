"""The scenario registry."""
