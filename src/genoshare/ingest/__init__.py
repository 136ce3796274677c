"""Ingest: validate -> de-identify -> checksum -> encrypt -> index -> publish, atomically."""
