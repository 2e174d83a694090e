"""agentos: the Python SDK for agents running under the agentos kernel.

```python
import agentos
client = agentos.Client.connect()          # the socket at AGENTOS_FD, handshake done
client.write("/mem/working/notes.txt", b"hello")
print(client.read("/mem/working/notes.txt"))
client.on_signal(agentos.Signal.TERM, lambda sig, reason: client.exit(0))
```

Modules: :mod:`agentos.abi` (every ABI type, byte-compatible with the Rust ``syscalls``
crate), :mod:`agentos.frame` (length-prefixed frames), :mod:`agentos.client` (blocking
:class:`Client`), :mod:`agentos.aio` (:class:`AsyncClient`), :mod:`agentos.errors`
(exceptions mirroring ``Errno``). Pure Python, no dependencies, Python >= 3.9.
"""

from . import abi, errors, frame
from .abi import (
    ABI_VERSION,
    AgentFrame,
    AgentId,
    DirEntry,
    Decision,
    Errno,
    Event,
    ExecOutput,
    FileKind,
    FileStat,
    KernelFrame,
    Message,
    OpenMode,
    Reply,
    Signal,
    Syscall,
    TraceContext,
    WriteMode,
)
from .aio import AsyncClient
from .client import SDK_NAME, Client
from .errors import *  # noqa: F401,F403  (the exception classes)
from .errors import AgentOSError, from_errno

__version__ = "0.1.0"
