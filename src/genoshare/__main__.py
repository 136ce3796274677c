"""``python -m genoshare`` runs the CLI."""

from genoshare.cli.main import main

main()
