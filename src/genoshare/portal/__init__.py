"""The web portal: server-rendered pages for researchers, committees, stewards and participants.

An interface like ``api`` and ``cli``: every page asks the same services and the same access decisions
(``genoshare.access``) the APIs use, and renders their answer; no rule is decided here a second time.
Pages work without JavaScript; ``web`` holds what every page shares (sessions, CSRF, headers, rendering).
"""
