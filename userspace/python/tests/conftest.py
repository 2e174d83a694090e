"""Makes `import agentos` find the package beside this directory, from any working dir."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
