"""Research code around a genoshare node, kept out of the node's own package and install.

``genoshare_lab.synth`` writes synthetic cohorts (msprime) for tests, benchmarks and the demo's shipped
cohort; ``genoshare_lab.privacy`` attacks the node's Beacon to measure its privacy defences
(``python -m genoshare_lab.privacy.harness``, results in ``docs/privacy.md``). It imports the node; the node
never imports it.
"""
