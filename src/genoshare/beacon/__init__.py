"""Beacon v2 discovery: metadata entities, variant queries and disclosure rules, as plain Python."""
