"""A Beacon network: this node asks its peers (configured, or read from a GA4GH Service Registry) at once.

``peers`` knows who they are; ``service.NetworkService`` asks them concurrently, each within its deadline;
``merge`` reads their answers (only what the Beacon v2 response schemas guarantee) into one answer that
names every peer that did not answer, and why; ``check`` tells an operator how each peer is doing.
"""
