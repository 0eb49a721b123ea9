"""The coalescer of identical reads: a call shares only a computation started after it
began; those arriving while one runs share ONE next one; keys are apart; errors and
a caller going away reach nobody else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reconciler.api.coalesce import Coalescer


class Fake:
    """A computation that counts its calls and ends when the test says so."""

    def __init__(self) -> None:
        self.calls = 0
        self.gates: list[asyncio.Event] = []
        self.fail = False

    async def __call__(self) -> int:
        self.calls += 1
        number = self.calls
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.fail:
            raise ValueError(f"call {number} failed")
        return number


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_callers_arriving_during_a_computation_share_one_started_after_them() -> None:
    async def main() -> None:
        coalescer, fake = Coalescer(), Fake()
        first = asyncio.ensure_future(coalescer.run("k", fake))
        await _settle()
        assert fake.calls == 1
        # these arrive while call 1 runs: they must not get its result
        late = [asyncio.ensure_future(coalescer.run("k", fake)) for _ in range(5)]
        await _settle()
        assert fake.calls == 1  # the next one waits for the running one to end
        fake.gates[0].set()
        assert await first == 1
        await _settle()
        assert fake.calls == 2  # one computation for all five, started after they all came
        # one arriving while call 2 runs waits for a third
        later = asyncio.ensure_future(coalescer.run("k", fake))
        fake.gates[1].set()
        assert await asyncio.gather(*late) == [2] * 5
        await _settle()
        assert fake.calls == 3
        fake.gates[2].set()
        assert await later == 3
        await _settle()
        assert coalescer._slots == {}  # nothing kept once idle

    asyncio.run(main())


def test_a_call_never_gets_the_result_of_a_computation_started_before_it() -> None:
    """Many callers at random moments: every result comes from a call started after
    the caller began (read-your-writes), and calls never overlap."""

    async def main() -> None:
        coalescer = Coalescer()
        clock = 0
        running = 0
        calls = 0

        async def compute() -> int:
            nonlocal clock, running, calls
            calls += 1
            running += 1
            assert running == 1
            clock += 1
            started = clock
            await asyncio.sleep(0.001)
            running -= 1
            return started

        async def caller(delay: float) -> None:
            nonlocal clock
            await asyncio.sleep(delay)
            clock += 1
            arrived = clock
            started = await coalescer.run("k", compute)
            assert started > arrived

        import random

        rng = random.Random(7)
        await asyncio.gather(*(caller(rng.random() * 0.05) for _ in range(200)))
        assert calls < 200  # some were shared

    asyncio.run(main())


def test_keys_do_not_share() -> None:
    async def main() -> None:
        coalescer, a, b = Coalescer(), Fake(), Fake()
        runs = [asyncio.ensure_future(coalescer.run(key, fake)) for key, fake in (("a", a), ("b", b), ("a", a))]
        await _settle()
        assert (a.calls, b.calls) == (1, 1)
        a.gates[0].set()
        b.gates[0].set()
        await _settle()
        a.gates[1].set()
        assert await asyncio.gather(*runs) == [1, 1, 2]

    asyncio.run(main())


def test_an_error_reaches_the_callers_of_that_computation_only() -> None:
    async def main() -> None:
        coalescer, fake = Coalescer(), Fake()
        fake.fail = True
        first = asyncio.ensure_future(coalescer.run("k", fake))
        await _settle()
        second = asyncio.ensure_future(coalescer.run("k", fake))
        third = asyncio.ensure_future(coalescer.run("k", fake))
        fake.gates[0].set()
        with pytest.raises(ValueError, match="call 1"):
            await first
        await _settle()
        fake.fail = False
        fake.gates[1].set()
        assert await asyncio.gather(second, third) == [2, 2]

    asyncio.run(main())


def test_a_caller_that_goes_away_leaves_the_computation_to_the_others() -> None:
    async def main() -> None:
        coalescer, fake = Coalescer(), Fake()
        gone = asyncio.ensure_future(coalescer.run("k", fake))
        await _settle()
        staying = asyncio.ensure_future(coalescer.run("k", fake))
        leaving = asyncio.ensure_future(coalescer.run("k", fake))
        await _settle()
        gone.cancel()
        leaving.cancel()
        await _settle()
        fake.gates[0].set()
        await _settle()
        assert fake.calls == 2  # the queued one still starts: someone waits for it
        fake.gates[1].set()
        assert await staying == 2
        results: list[Any] = await asyncio.gather(gone, leaving, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)

    asyncio.run(main())
