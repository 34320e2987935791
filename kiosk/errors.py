"""Errors a user can cause; the CLI shows their message and exits non-zero, never a traceback."""


class KioskError(Exception):
    """Base of all user-fixable errors; str() is the one-line message to show."""


class ModelError(KioskError):
    """A model file is missing, corrupted or of the wrong shape."""


class ImageError(KioskError):
    """An image file is missing, corrupt or not an image, or an array is not RGB uint8 HxWx3."""


class NoFaceError(KioskError):
    """No usable face was found where one was needed (e.g. an enrolment photo)."""


class GalleryError(KioskError):
    """A gallery operation got bad input (wrong embedding shape, unknown person)."""


# --- database layer (kiosk/store) -------------------------------------------------------


class StoreError(KioskError):
    """A problem with the attendance database."""


class DatabaseUnavailable(StoreError):
    """The database cannot take a read or write now (locked past busy_timeout, disk full, read-only,
    I/O error); nothing was changed and retrying later may work."""


class NotAKioskDatabase(StoreError):
    """The file is not SQLite, or is SQLite without the kiosk schema."""


class DatabaseTooNew(StoreError):
    """The database was migrated by a newer kiosk version than this one."""


class DatabaseOutdated(StoreError):
    """The database schema is behind the code; `kiosk db upgrade` fixes it."""


class PersonNotFound(StoreError):
    """No person with the given id or employee id."""


class DuplicatePerson(StoreError):
    """An employee id (or username) is already taken."""


class InvalidIdentity(StoreError):
    """A name or employee id the database cannot hold: empty, too long or with control characters."""


class LastAdmin(StoreError):
    """The change would leave no active admin account."""


class InvalidTemplate(StoreError):
    """A face template is not a finite 128-d float vector."""


class DatabaseReadOnly(StoreError):
    """The database file or its folder cannot be written (or opened) by this user."""


class DatabaseDamaged(StoreError):
    """The database file is corrupt (a damaged page, a bad header); integrity_check and a backup help."""


class TimeOutOfRange(StoreError):
    """A time the database must not take: older than retention keeps data, or in the future."""


class LocalTimeError(KioskError):
    """A wall-clock time that does not exist at the site (skipped by DST), happens twice there (the
    repeated hour) without a UTC offset to say which, or has an offset the site never uses then."""


# --- reports ------------------------------------------------------------------------------


class ReportError(KioskError):
    """A report cannot be produced as asked (bad date range, unknown format)."""


# --- camera (kiosk/camera) ----------------------------------------------------------------


class CameraError(KioskError):
    """The camera cannot be used as configured (bad options, missing software, missing file)."""


class CameraUnavailableError(CameraError):
    """The camera is not there right now (unplugged, busy, not detected); retrying may help."""


class CameraLostError(CameraUnavailableError):
    """An open camera stopped delivering frames; close it and open it again."""


# --- web app (kiosk/web) ------------------------------------------------------------------


class WebError(KioskError):
    """A problem with a web-app request or account (bad password, bad form value)."""


class UploadError(WebError):
    """An uploaded photo is refused (too big, too many, not an image, bad file name)."""


def listing(headline: str, lines: list[str], most: int = 20) -> str:
    """headline, then up to `most` of lines (one per line) and "... and N more" for the rest."""
    more = [f"... and {len(lines) - most} more"] if len(lines) > most else []
    return "\n".join([headline, *lines[:most], *more])
