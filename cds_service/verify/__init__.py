"""``ixazomib-cds verify``: the bundled clinical scenarios, run against a FHIR server (a public
sandbox, or the EHR's test server) and the service, with EHR-style prefetch and without.

``runner`` loads and calls, ``isolation`` gives each run's resources ids of their own,
``checks`` compares answers with expectations (the test suite uses it too), ``output`` writes
the table and the JUnit file, ``signing`` the CDS Hooks JWTs.
"""
