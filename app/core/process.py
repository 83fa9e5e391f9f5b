"""Process-wide runtime tuning, applied once per worker after start-up."""

import gc

# Python's defaults (700, 10, 10) start a young-generation collection every 700 net
# allocations: several per request here, each walking objects that are about to be freed by
# reference counting anyway (the request path creates almost no reference cycles: a 60,000
# request run collected ~700 objects). Every tenth of those scans the middle generation and
# then, periodically, the whole heap: SQLAlchemy's and pydantic's ~140,000 long-lived objects.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> tuple[int, int, int]:
    """Freeze what start-up built and collect rarely; returns the thresholds it replaced.

    `gc.freeze()` moves every object alive now (modules, mappers, schemas, compiled
    statements) out of the collector's sight for good, so full collections only walk what
    requests allocate. Cycles are still collected, just less often (docs/performance.md has
    what it bought and the memory it costs).
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return previous
