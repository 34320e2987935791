"""`python -m kiosk.training.dlib_embedder`: the converter's command line (see cli)."""

import sys

from kiosk.training.dlib_embedder.cli import main

sys.exit(main())
