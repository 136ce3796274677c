"""The demo node: public htsget test files, a synthetic controlled cohort, and a demo passport issuer."""
