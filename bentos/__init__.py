"""BentoML services, one folder per model."""
