"""Reliability and security suites run against the real service (see README "Reliability")."""
