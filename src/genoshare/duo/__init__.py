"""GA4GH Data Use Ontology: consent codes on datasets, and whether a research purpose fits them."""
