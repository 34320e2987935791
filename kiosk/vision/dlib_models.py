"""Load dlib's model files from face_recognition_models, or say clearly which file is broken.

A missing or cut-off file makes dlib raise a RuntimeError that does not always name the file,
and a missing package makes face_recognition print a hint and quit() with status 0.
load_face_recognition() checks first and turns every such case into one ModelError; it loads
only what face analysis needs at once (see DlibModels).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Any

from kiosk.errors import ModelError
from kiosk.vision.types import Box, RGBImage

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


class DlibModels:
    """dlib's detectors, landmark predictors and ResNet embedder from face_recognition_models,
    with face_recognition's calls (face_locations, _css_to_rect) on top.

    Unlike `import face_recognition`, which loads all four model files, the ResNet embedder
    (~25 MB in memory, unused when the LiteRT twin embeds) and the CNN detector load on first
    use; a damaged file is a ModelError naming it, then too. Boxes are (top, right, bottom,
    left) pixels, images RGB uint8 HxWx3, as in face_recognition.
    """

    def __init__(self, paths: dict[str, Path]) -> None:
        import dlib

        self._dlib = dlib
        self._paths = paths
        self.face_detector = dlib.get_frontal_face_detector()
        self.pose_predictor_68_point = self._load("shape_predictor_68_face_landmarks.dat")
        self.pose_predictor_5_point = self._load("shape_predictor_5_face_landmarks.dat")

    def _load(self, name: str) -> Any:
        loader = dict(MODEL_FILES.values())[name]
        try:
            return getattr(self._dlib, loader)(str(self._paths[name]))
        except RuntimeError as exc:
            raise _which_is_damaged({name: self._paths[name]}, exc) from None

    @functools.cached_property
    def face_encoder(self) -> Any:
        """dlib's ResNet face embedder (loaded on first use)."""
        return self._load("dlib_face_recognition_resnet_model_v1.dat")

    @functools.cached_property
    def cnn_face_detector(self) -> Any:
        """dlib's CNN (MMOD) face detector (loaded on first use)."""
        return self._load("mmod_human_face_detector.dat")

    def _css_to_rect(self, css: Box) -> Any:
        """(top, right, bottom, left) -> dlib.rectangle."""
        return self._dlib.rectangle(css[3], css[0], css[1], css[2])

    def face_locations(self, img: RGBImage, number_of_times_to_upsample: int = 1,
                       model: str = "hog") -> list[Box]:
        """Face boxes (top, right, bottom, left), trimmed to the image, as face_recognition finds them."""
        if model == "cnn":
            rects = [face.rect for face in self.cnn_face_detector(img, number_of_times_to_upsample)]
        else:
            rects = list(self.face_detector(img, number_of_times_to_upsample))
        height, width = img.shape[:2]
        return [(max(r.top(), 0), min(r.right(), width), min(r.bottom(), height), max(r.left(), 0))
                for r in rects]


def load_face_recognition() -> DlibModels:
    """dlib's models as face_recognition uses them (landmarks now, the rest on first use);
    ModelError naming a missing or damaged file."""
    return DlibModels(check_model_files())


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
