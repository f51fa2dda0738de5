"""``python -m cnn_desktop`` runs the command-line interface (the window by default)."""

import sys

from cnn_desktop.cli import main

sys.exit(main())
