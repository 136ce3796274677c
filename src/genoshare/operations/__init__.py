"""Running a node for years: its settings checked and documented, health, metrics, logs, backups, key rotation.

Between the interfaces (the ``genoshare`` commands, the API's start-up and probes) and the composition root:
what an operator runs against a whole node, rather than what one request asks of one service.
"""
