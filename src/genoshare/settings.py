"""Node configuration: one TOML file in the data directory, overridden by ``GENOSHARE_*`` variables.

Settings are built by ``load_settings`` and passed to ``create_app`` / the CLI commands; nothing reads
configuration at import time, so tests can run many nodes side by side in one process.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_FILE = "genoshare.toml"


class TrustedIssuer(BaseModel):
    """A passport broker or visa issuer whose signatures this node accepts."""

    issuer: str
    jwks_url: str | None = None
    jwks_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TrustedIssuer:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError(f"trusted issuer {self.issuer!r}: give exactly one of jwks_url or jwks_file")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GENOSHARE_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path
    database_url: str = ""
    objects_url: str = ""
    #: Where clients reach this node; used in DRS self_uri, access URLs and htsget tickets.
    public_url: str = "http://127.0.0.1:8080"
    node_id: str = "org.example.genoshare"
    node_name: str = "genoshare node"
    organization: str = "Example Institute"
    environment: Literal["dev", "test", "prod"] = "dev"
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    #: Lifetime of the signed data URLs handed out by DRS and htsget.
    ticket_ttl_seconds: int = Field(default=300, ge=10, le=86400)
    max_bulk_request_length: int = Field(default=100, ge=1, le=10000)
    #: Groups of passport issuers that are one login service: a person's accounts at them share one
    #: Beacon privacy budget (``genoshare.access.privacy``).
    linked_issuers: list[list[str]] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (passed as init values): operators override without editing it.
        return env_settings, init_settings

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _defaults_in_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'genoshare.db'}"
        if not self.objects_url:
            self.objects_url = (self.data_dir / "objects").as_uri()
        return self

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def public_host(self) -> str:
        """Host (and port) part of ``public_url``, as DRS URIs ``drs://host/id`` want it."""
        return self.public_url.split("://", 1)[-1].split("/", 1)[0]


def load_settings(data_dir: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings for the node in ``data_dir`` (default: ``$GENOSHARE_DATA_DIR`` or ``./node``)."""
    directory = Path(data_dir or os.environ.get("GENOSHARE_DATA_DIR") or "node")
    values: dict[str, Any] = {}
    config = directory / CONFIG_FILE
    if config.is_file():
        with config.open("rb") as handle:
            values = tomllib.load(handle)
    values.update(overrides)
    values["data_dir"] = directory
    return Settings(**values)
