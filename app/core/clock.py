"""Where the service's timers read the time: one type, so tests can hand in a clock they move."""

import time
from collections.abc import Callable

# Seconds as a float. Windows that other processes share (rate-limit counters in the database)
# need the wall clock; a process-local expiry (cache entries) may use a monotonic one.
Clock = Callable[[], float]

wall_clock: Clock = time.time
