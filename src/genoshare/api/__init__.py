"""HTTP adapters: thin FastAPI routers over the protocol packages, built by ``create_app``."""
