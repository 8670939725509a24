"""The CDS Hooks 2.0 protocol layer: request envelopes, service definitions, HTTP routes."""
