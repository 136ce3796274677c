"""genoshare: a node that shares genomic data responsibly under GA4GH standards.

Packages, one per standard or concern (the layers they form, and which may import which: CONTRIBUTING.md):

- ``access``   the one policy decision point: passports, visas, DUO, consent, granularity
- ``audit``    the hash-chained, append-only log of every decision and every byte served
- ``store``    metadata database (SQLAlchemy) and object storage behind one interface
- ``crypt``    Crypt4GH at rest, random-access decryption and header re-encryption
- ``ingest``   validate -> de-identify -> checksum -> encrypt -> index -> publish
- ``drs``, ``htsget``, ``beacon``  protocol logic, with thin FastAPI routers in ``api``
"""

__version__ = "0.1.0"
