"""Settings of the manager/admin web app (address, logins, uploads, its secret key)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator

from kiosk.config.base import Section


class WebSettings(Section):
    """The manager/admin web app: address, sessions, login throttling, uploads and its secret key."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Team expression figures are hidden when fewer people than this contribute.
    min_group_size: int = Field(5, ge=1, le=1000)
    # Send the session cookie only over https (set true behind a TLS proxy); false lets the
    # app work over plain http on the office network, where the cookie can be sniffed.
    secure_cookies: bool = False
    # A login lasts this many hours; longer is more convenient, shorter limits a stolen cookie.
    session_hours: float = Field(12.0, gt=0.0, le=24.0 * 30)
    # Wrong passwords allowed per account (from any address) before each further try must
    # wait: 2 s, then 4, 8, ... up to login_window_s; a quiet 2 x login_window_s forgets them.
    # Lower slows guessing more and makes a clumsy typist wait sooner.
    login_attempts: int = Field(5, ge=1, le=1000)
    # The same per client address, much higher: an office behind one NAT address shares it.
    login_address_attempts: int = Field(50, ge=1, le=100000)
    login_window_s: int = Field(300, ge=10, le=86400)
    # Reverse proxies (IP addresses or CIDR blocks) whose X-Forwarded-For header names the
    # client (for login throttling and the audit log). Empty: the header is ignored, since
    # anyone can send it.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Enrolment uploads: photos per person, bytes per photo and pixels per photo. Larger
    # accepts phone photos unchanged; smaller bounds memory and decoding time on the Pi. The
    # whole upload (max_photos x max_photo_mb) is held in memory beside the face models
    # (~220 MB): 8 x 6 MB peaks at ~300 MB, 12 x 10 MB at ~400 MB. Photos above 50 megapixels
    # (PNG and WebP above 8) are refused whatever max_photo_megapixels says (kiosk.vision.faces).
    max_photos: int = Field(8, ge=1, le=50)
    max_photo_mb: float = Field(6.0, gt=0.0, le=100.0)
    max_photo_megapixels: float = Field(40.0, gt=0.0, le=200.0)
    # Signing key for session cookies; created (random, mode 0600) on first start.
    # Empty means "web_secret.key" beside the database file.
    secret_key_file: Path | None = None
    # The kiosk service's status file is "stale" (service shown as not running) when it
    # was last written more than this many seconds ago.
    status_stale_s: float = Field(120.0, gt=0.0, le=86400.0)
    # `kiosk serve` runs the retention purge (retention.*) at start and then every day.
    daily_purge: bool = True
    # Worker threads of the production server (waitress); more serves more browsers at once.
    threads: int = Field(4, ge=1, le=64)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR block: {item!r}") from None
        return [item.strip() for item in value]
