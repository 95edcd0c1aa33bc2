"""The Ultralytics YOLO trainer: `python -m trainers.ultralytics` (trainer environment in, callbacks out)."""

import sys

from trainers.ultralytics.main import main

sys.exit(main())
