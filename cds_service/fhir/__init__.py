"""Access to patient data: the request's prefetch first, then the EHR's FHIR server."""
