"""Clinical use: rare-disease matchmaking (Matchmaker Exchange API) and clinical variant lookup."""
