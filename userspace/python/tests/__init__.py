"""The Python SDK's tests, run with the standard library alone:

    python3 -m unittest discover -s userspace/python/tests -t userspace/python

(pytest runs them too.) `import agentos` finds the package beside this directory."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
