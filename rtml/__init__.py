"""rtml core: settings, the embedded Redis, event schemas, the feature-service contract, the CLI."""
