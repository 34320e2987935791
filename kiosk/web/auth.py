"""Web accounts: scrypt password hashes, account creation for the CLI, login rate limiting.

Hash format: "scrypt$<log2 n>$<r>$<p>$<salt base64>$<key base64>" (stdlib hashlib.scrypt; the
parameters travel with the hash, so raising SCRYPT_LOG2_N later keeps old hashes valid).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import threading
import time
from collections import defaultdict, deque

from kiosk.errors import WebError
from kiosk.store import Database, UserInfo, add_user

logger = logging.getLogger(__name__)

# scrypt cost: n = 2**15, r = 8 uses 32 MiB and ~0.1 s per hash on a desktop, ~0.5 s on a
# Pi 4; higher slows an attacker holding a stolen database and every login alike.
SCRYPT_LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
_KEY_BYTES = 32
MIN_PASSWORD_LENGTH = 10
USERNAME_RE = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
ROLES = ("admin", "manager")


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * r * n + (1 << 20), dklen=_KEY_BYTES)


def hash_password(password: str) -> str:
    """A salted scrypt hash string of password (see module docstring for the format)."""
    salt = os.urandom(16)
    key = _scrypt(password, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return (f"scrypt${SCRYPT_LOG2_N}${SCRYPT_R}${SCRYPT_P}$"
            f"{b64(salt).decode()}${b64(key).decode()}")


def verify_password(password: str, stored: str) -> bool:
    """True when password matches the stored hash string (constant-time comparison)."""
    try:
        scheme, log2_n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt" or not (10 <= int(log2_n) <= 22):
            return False
        expected = base64.b64decode(key)
        got = _scrypt(password, base64.b64decode(salt), int(log2_n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


_DUMMY_HASH: str | None = None


def burn_time(password: str) -> None:
    """Spend as long as a real verification (for unknown usernames: no timing oracle)."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("not a real password")
    verify_password(password, _DUMMY_HASH)


def check_new_password(password: str) -> None:
    """Raise WebError when a new password is too weak (length only: long beats clever)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WebError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise WebError("password too long (1024 characters at most)")


def create_user(
    db: Database, username: str, password: str, role: str, *, actor: str = "cli"
) -> UserInfo:
    """Create a web account (role "admin" or "manager") with a hashed password.

    For `kiosk users add --role admin`; raises WebError for a bad name, role or password and
    DuplicatePerson when the username is taken.
    """
    username = username.strip()
    if not USERNAME_RE.match(username):
        raise WebError("username: 1-100 letters, digits and . _ @ - only")
    if role not in ROLES:
        raise WebError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    check_new_password(password)
    user = add_user(db, username, hash_password(password), role, actor=actor)
    logger.info("web user %s (%s) created by %s", username, role, actor)
    return user


def session_fingerprint(user: UserInfo) -> str:
    """A short value derived from the password hash: a password change ends old sessions."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


class LoginLimiter:
    """Counts failed logins per key (client address, username) in a sliding window.

    In memory: one `kiosk serve` process. A restart forgets the counts (acceptable: a restart
    needs access to the Pi).
    """

    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._fails[key]
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked_for(self, *keys: str) -> float:
        """Seconds until any of keys may try again (0 when none is blocked)."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._prune(key, now)
                if len(q) >= self.attempts:
                    wait = max(wait, self.window_s - (now - q[0]))
        return wait

    def failed(self, *keys: str) -> None:
        """Record one failed attempt for each key."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._prune(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        """Forget the failures of keys (after a good login)."""
        with self._lock:
            for key in keys:
                self._fails.pop(key, None)
