"""Monitoring of the sensors scenario (`rtml monitor run --model sensors`)."""
