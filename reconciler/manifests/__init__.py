"""YAML manifests → models: loading, positions, validation errors, JSON Schemas."""
