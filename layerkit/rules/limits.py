"""Lambda's numbers: the limits of a function and of its execution environment, each once.

From the Lambda quotas page and the execution environment lifecycle page of the AWS Lambda developer guide (and
measured where the guide is silent, see ``docs/threat-model.md``). Where the kit enforces each one is listed in
``docs/local-invoke.md``.
"""

from __future__ import annotations

#: A function's code plus all its layers, unzipped: 250 MB as Lambda counts it (262,144,000 bytes).
MAX_UNZIPPED_BYTES = 262_144_000
#: Layers a function may have.
MAX_LAYERS = 5
#: A zip uploaded directly (not through S3, as the CDK uploads): 50 MB.
DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024
#: A synchronous invoke's payload (the event).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: A synchronous invoke's response.
MAX_RESPONSE_BYTES = 6_291_556
#: The init phase of an on-demand function: 10 s of its own, then retried within the first invoke.
INIT_TIMEOUT_S = 10.0
#: Processes and threads of one execution environment.
MAX_PROCESSES = 1024
#: Open file descriptors of one execution environment.
MAX_OPEN_FILES = 1024
#: Memory size, in MB: the range Lambda accepts (the default is 128).
MEMORY_MB = (128, 10_240)
#: Timeout, in seconds (the default is 3).
TIMEOUT_S = (1, 900)
#: Ephemeral storage (``/tmp``), in MB: disk, not memory (the default is 512).
EPHEMERAL_STORAGE_MB = (512, 10_240)
