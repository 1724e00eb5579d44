"""The laptop's one HTTP client for brain-api (collectors, CLI and MCP share it): retries, errors, TLS."""
