"""Camera sources behind one small protocol: picamera2 (Pi), opencv (USB/stream), replay (files).

Typical use in a long-running loop::

    camera = open_retrying_camera(settings.camera)   # never fails for a missing camera
    while running:
        frame = camera.read()                         # Frame(image RGB uint8 HxWx3, timestamp, index) | None
        ...
        camera.status().as_dict()                     # for the status page
"""

from kiosk.camera.base import Camera, Frame
from kiosk.camera.factory import create_camera, open_camera, open_retrying_camera
from kiosk.camera.options import OPTIONS_BY_TYPE, options_problem
from kiosk.camera.retry import CameraState, CameraStatus, RetryingCamera

__all__ = [
    "OPTIONS_BY_TYPE",
    "Camera",
    "CameraState",
    "CameraStatus",
    "Frame",
    "RetryingCamera",
    "create_camera",
    "open_camera",
    "open_retrying_camera",
    "options_problem",
]
