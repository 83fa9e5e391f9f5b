"""Process-wide tuning: the garbage collector after start-up."""

import gc
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.process import GC_THRESHOLDS, tune_garbage_collector


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tuning_freezes_the_start_up_heap_and_raises_the_thresholds() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    assert tune_garbage_collector() == (700, 10, 10)
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 10_000  # modules, models, schemas: what start-up built


@pytest.mark.usefixtures("restore_gc")
def test_cycles_are_still_collected_after_tuning() -> None:
    import weakref

    tune_garbage_collector()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    watcher = weakref.ref(a)
    del a, b
    gc.collect()
    assert watcher() is None


@pytest.mark.usefixtures("restore_gc")
def test_the_app_tunes_the_collector_when_the_setting_says_so(
    make_app: Callable[..., FastAPI],
) -> None:
    with TestClient(make_app(GC_TUNING=False)):
        assert gc.get_threshold() != GC_THRESHOLDS
    with TestClient(make_app(GC_TUNING=True)):
        assert gc.get_threshold() == GC_THRESHOLDS
