"""The `kiosk` command: parse arguments, call the package, print. User errors exit non-zero with one message.

base holds the root group `main` and what the commands share (settings, database, error handling);
each other module holds one area's commands, added to `main` here. Commands import the package
lazily, so `kiosk --help` and usage errors load neither dlib, SQLAlchemy nor TensorFlow.
"""

from __future__ import annotations

from kiosk.cli import central, corrections, database, doors, models, people, report, service, users
from kiosk.cli.base import EXIT_CONFIG_ERROR, EXIT_USER_ERROR, Context, main

for _command in (
    service.config, service.run, service.serve, service.demo,      # settings and processes
    database.db,                                                   # schema and off-site copies
    people.enroll, people.people,                                  # enrolment and privacy
    corrections.events, corrections.leave,                         # attendance by hand
    report.report,                                                 # reports
    users.users,                                                   # web accounts
    central.central,                                               # a door's central server
    doors.doors,                                                   # a central server's door kiosks
    models.evaluate, models.train, models.bench,                   # accuracy, training, speed
):
    main.add_command(_command)

__all__ = ["EXIT_CONFIG_ERROR", "EXIT_USER_ERROR", "Context", "main"]
