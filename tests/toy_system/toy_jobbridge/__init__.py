"""A toy job system, registered with jobbridge through the ``jobbridge.systems`` entry point.

Its layout (under a key prefix, ``toy`` by default): ``<prefix>:queue:<name>`` lists of JSON
jobs, new ones pushed on the left; ``<prefix>:failed``, a list of JSON jobs with an ``error``;
``<prefix>:running``, the jobs workers took (with a ``worker``). A job is ``{"id", "name",
"queue", "args", "enqueued_at"}`` (Unix seconds).
"""
