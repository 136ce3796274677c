"""Datasets: the unit of consent (DUO codes), custody and access level."""
