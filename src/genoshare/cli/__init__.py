"""The ``genoshare`` command line."""
