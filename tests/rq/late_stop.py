"""An ``rq worker`` class (``--worker-class tests.rq.late_stop.LateStopWorker``) whose exit
always takes the path a loaded machine takes by chance (issue 15, class 8): RQ's teardown
sends UNSUBSCRIBE and then stops its pub/sub thread; here the thread is given time to read
the reply first, so it goes on to wait for a subscription that never comes and the stop's
join hangs for RQ's 60 s ``sleep_time``. Everything else is RQ's own ``Worker``."""

from __future__ import annotations

import time
from typing import Any

from rq import Worker


class LateStopWorker(Worker):
    def unsubscribe(self) -> None:
        thread, pubsub = self.pubsub_thread, getattr(self, "pubsub", None)
        if thread is not None and pubsub is not None:
            stop = thread.stop

            def late_stop(*args: Any, **kwargs: Any) -> None:
                deadline = time.monotonic() + 5
                # The thread clears ``subscribed`` when it handles the UNSUBSCRIBE reply.
                while pubsub.subscribed and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.1)
                stop(*args, **kwargs)

            thread.stop = late_stop
        super().unsubscribe()  # type: ignore[no-untyped-call]
