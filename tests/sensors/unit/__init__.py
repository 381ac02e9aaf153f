"""sensors unit tests."""
