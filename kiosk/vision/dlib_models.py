"""Load face_recognition (and with it dlib's model files) or say clearly which file is broken.

face_recognition loads four .dat files from the face_recognition_models package when it is
imported; a missing or cut-off file makes dlib raise a RuntimeError that does not always name
the file, and a missing package makes face_recognition print a hint and quit() with status 0.
load_face_recognition() checks first and turns every such case into one ModelError.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import warnings
from pathlib import Path
from types import ModuleType

from kiosk.errors import ModelError

logger = logging.getLogger(__name__)

PACKAGE = "face_recognition_models"
REINSTALL = f"reinstall it: pip install --force-reinstall --no-deps {PACKAGE}"
# face_recognition_models function -> (file name, dlib class that loads it)
MODEL_FILES = {
    "pose_predictor_model_location": ("shape_predictor_68_face_landmarks.dat", "shape_predictor"),
    "pose_predictor_five_point_model_location": ("shape_predictor_5_face_landmarks.dat", "shape_predictor"),
    "cnn_face_detector_model_location": ("mmod_human_face_detector.dat", "cnn_face_detection_model_v1"),
    "face_recognition_model_location": ("dlib_face_recognition_resnet_model_v1.dat", "face_recognition_model_v1"),
}


def model_paths() -> dict[str, Path]:
    """{file name: path} of the dlib model files face_recognition will load; ModelError when the package is missing."""
    if importlib.util.find_spec(PACKAGE) is None:
        raise ModelError(f"the dlib face models are not installed (Python package {PACKAGE}); "
                         f"install it: pip install {PACKAGE}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its pkg_resources import warns on new setuptools
        package = importlib.import_module(PACKAGE)
    return {name: Path(getattr(package, func)()) for func, (name, _loader) in MODEL_FILES.items()}


def check_model_files() -> dict[str, Path]:
    """Every model file exists, is a non-empty file; {file name: path}. ModelError naming the first bad one."""
    paths = model_paths()
    for path in paths.values():
        if not path.is_file():
            raise ModelError(f"dlib model file {path} is missing ({PACKAGE} is incomplete); {REINSTALL}")
        if path.stat().st_size == 0:
            raise ModelError(f"dlib model file {path} is empty ({PACKAGE} is damaged); {REINSTALL}")
    return paths


def load_face_recognition() -> ModuleType:
    """face_recognition.api with its models loaded (~1.5 s); ModelError naming a missing or damaged file."""
    paths = check_model_files()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module("face_recognition.api")
    except RuntimeError as exc:  # dlib could not read a model file
        raise _which_is_damaged(paths, exc) from None


def _which_is_damaged(paths: dict[str, Path], error: RuntimeError) -> ModelError:
    """Load the files one by one (only after a failure) to name the one dlib cannot read."""
    import dlib

    loaders = dict(MODEL_FILES.values())
    for name, path in paths.items():
        try:
            getattr(dlib, loaders[name])(str(path))
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
            logger.debug("dlib cannot load %s: %s", path, exc)
            return ModelError(f"dlib model file {path} is damaged ({reason}); {REINSTALL}")
    first = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
    return ModelError(f"dlib could not load its model files from {PACKAGE} ({first}); {REINSTALL}")
