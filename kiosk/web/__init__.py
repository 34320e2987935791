"""Manager/admin web app (Flask): reports, enrolment, privacy controls, kiosk status.

For the CLI: `kiosk serve` -> serve(settings); `kiosk users add` -> create_user(db, ...); changes to
accounts with their rules (not one's own, never the last active admin) -> kiosk.web.accounts.
"""

from kiosk.web.app import create_app, serve
from kiosk.web.auth import create_user, hash_password, verify_password

__all__ = ["create_app", "create_user", "hash_password", "serve", "verify_password"]
