"""Web accounts: scrypt password hashes, account creation for the CLI, login throttling, client address.

Hash format: "scrypt$<log2 n>$<r>$<p>$<salt base64>$<key base64>" (stdlib hashlib.scrypt; the
parameters travel with the hash, so raising SCRYPT_LOG2_N later keeps old hashes valid).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Callable

from kiosk.backoff import backoff_s
from kiosk.errors import WebError
from kiosk.store import Database, UserInfo, add_user, set_user_password
from kiosk.vocabulary import Role, one_of

logger = logging.getLogger(__name__)

# scrypt cost: n = 2**15, r = 8 uses 32 MiB and ~0.1 s per hash on a desktop, ~0.5 s on a
# Pi 4; higher slows an attacker holding a stolen database and every login alike.
SCRYPT_LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
_KEY_BYTES = 32
MIN_PASSWORD_LENGTH = 10
USERNAME_RE = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
ROLES: tuple[Role, ...] = tuple(Role)


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


def parse_role(text: str) -> Role:
    """The Role named by text ("admin", "manager"); WebError naming the choices otherwise."""
    try:
        return Role(one_of(Role, text, "role"))
    except ValueError as exc:
        raise WebError(str(exc)) from None


def create_user(
    db: Database, username: str, password: str, role: str, *, actor: str = "cli"
) -> UserInfo:
    """Create a web account (a Role: "admin" or "manager") with a hashed password.

    For `kiosk users add --role admin` and the Users page; raises WebError for a bad name, role
    or password and DuplicatePerson when the username is taken.
    """
    username = username.strip()
    if not USERNAME_RE.match(username):
        raise WebError("username: 1-100 letters, digits and . _ @ - only")
    role = parse_role(role)
    check_new_password(password)
    user = add_user(db, username, hash_password(password), role, actor=actor)
    logger.info("web user %s (%s) created by %s", username, role, actor)
    return user


def reset_password(db: Database, username: str, password: str, *, actor: str) -> UserInfo:
    """Give an account a new password (checked, hashed); all its sessions end. Audited.

    For the Users page and `kiosk users passwd`; WebError for a weak password, StoreError for
    an unknown username.
    """
    check_new_password(password)
    user = set_user_password(db, username, hash_password(password), actor=actor)
    logger.info("password of web user %s set by %s", username, actor)
    return user


class Backoff:
    """Failed attempts per key with a growing wait: after `free` failures each further one doubles it.

    The waits are base_s, 2 base_s, 4 base_s, ... up to max_s, counted from the last failure;
    forget_s without a failure forgets the key. In memory (one `kiosk serve` process); at most
    MAX_KEYS keys (the stalest go first), so a flood of made-up names cannot fill the memory.
    """

    MAX_KEYS = 10_000

    def __init__(self, free: int, base_s: float, max_s: float, forget_s: float,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.free = free
        self.base_s = base_s
        self.max_s = max_s
        self.forget_s = forget_s
        self._timer = timer
        self._fails: dict[str, tuple[int, float]] = {}  # key -> (failures, last failure)
        self._lock = threading.Lock()

    def _count(self, key: str, now: float) -> tuple[int, float]:
        fails, last = self._fails.get(key, (0, now))
        if fails and now - last > self.forget_s:
            del self._fails[key]
            return 0, now
        return fails, last

    def wait(self, key: str) -> float:
        """Seconds until key may try again (0: now)."""
        now = self._timer()
        with self._lock:
            fails, last = self._count(key, now)
        if fails < self.free:
            return 0.0
        delay = backoff_s(self.base_s, self.max_s, fails - self.free)
        return max(0.0, last + delay - now)

    def failed(self, key: str) -> None:
        """Record one failure of key."""
        now = self._timer()
        with self._lock:
            fails, _ = self._count(key, now)
            self._fails[key] = (fails + 1, now)
            if len(self._fails) > self.MAX_KEYS:
                stalest = sorted(self._fails, key=lambda k: self._fails[k][1])
                for old in stalest[: len(self._fails) - self.MAX_KEYS]:
                    del self._fails[old]

    def clear(self, key: str) -> None:
        """Forget key's failures (after a good password)."""
        with self._lock:
            self._fails.pop(key, None)


class LoginLimiter:
    """Throttles password checks per account and per client address (Backoff each).

    An account gets `account_attempts` free failures (from any address), an address
    `address_attempts` (much more: an office behind one NAT address shares it). A good password
    clears the account's count, not the address's (one valid account must not reset the count
    of an address that guesses others). The first waits are seconds, growing to window_s.
    """

    BASE_WAIT_S = 2.0

    def __init__(self, account_attempts: int, address_attempts: int, window_s: float,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.accounts = Backoff(account_attempts, self.BASE_WAIT_S, window_s, 2 * window_s, timer)
        self.addresses = Backoff(address_attempts, self.BASE_WAIT_S, window_s, 2 * window_s, timer)

    def blocked_for(self, username: str, address: str) -> float:
        """Seconds until this account may be tried from this address (0: now)."""
        return max(self.accounts.wait(username.lower()), self.addresses.wait(address))

    def failed(self, username: str, address: str) -> None:
        """Record a wrong password for the account from the address."""
        self.accounts.failed(username.lower())
        self.addresses.failed(address)

    def succeeded(self, username: str, address: str) -> None:
        """A right password: the account starts afresh."""
        self.accounts.clear(username.lower())


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: list[str]) -> tuple[Network, ...]:
    """IP addresses or CIDR blocks ("10.0.0.0/8", "::1") -> networks; ValueError if one is bad."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in net for net in trusted)


def client_address(remote: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client's address: remote, or, when remote is a trusted proxy, the X-Forwarded-For hop
    nearest to us that is not a trusted proxy (a hop that is no IP address stops the walk: the
    proxy that wrote it is the answer). Without trusted proxies the header is ignored."""
    if not forwarded_for or not _trusted(remote, trusted):
        return remote
    answer = remote
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if _ip(hop) is None:
            return answer
        answer = hop
        if not _trusted(hop, trusted):
            return hop
    return answer
