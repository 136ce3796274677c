"""The one policy decision point: who may see what, at which granularity.

Steps, in the order every API runs them (see ``policy.AccessPolicy``):
verify passport (signatures against trusted JWKS) -> collect visas -> match the dataset's access level
and grants -> decide the granularity -> record the decision in the audit log.
"""
