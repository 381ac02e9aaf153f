"""Process groups, readiness waits and flow launch: what the CLI, demo and tests start."""
