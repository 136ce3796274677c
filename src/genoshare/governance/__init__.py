"""Governance: access requests, committee decisions, node-issued grants, dynamic consent, usage reports.

DUO matching explains each request; decisions about access itself stay in ``genoshare.access``.
"""
