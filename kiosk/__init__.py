"""Attendance kiosk: face recognition check-in, optional expression analysis, SQLite records."""

__version__ = "0.1.0"
