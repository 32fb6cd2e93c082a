"""Stateful model test: the C ring against a deque and the documented rules.

Hypothesis drives random writes, batch writes and reads; a plain model
predicts, from docs/protocol.md alone, whether each write fits, where the
positions end up and what each read returns.  Rings start with their
position and sequence counters just below 2^64, so they wrap mid-run.
"""

from __future__ import annotations

import collections
from array import array

import hypothesis.strategies as st
from helpers import ringforge as rf
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from shmsock import MessageTooLarge
from shmsock import _ring as R

M64 = 1 << 64


class RingModel(RuleBasedStateMachine):
    @initialize(
        cap=st.sampled_from([256, 512, 1024, 4096]),
        back=st.integers(0, 1024),
        seq_back=st.integers(0, 1000),
        checksum=st.booleans(),
    )
    def setup(self, cap, back, seq_back, checksum):
        self.cap = cap
        self.maxp = cap // 2 - 24
        start = (M64 - 8 * back) % M64
        self.region = bytearray(R.region_size(cap))
        R.init_ring(self.region, cap, start, (M64 - seq_back) % M64)
        self.prod = R.Producer(self.region, cap, checksum=checksum)
        self.cons = R.Consumer(self.region, cap)
        self.buf = R.ReadBuffer(cap, 64)
        self.head = self.tail = start
        # (payload, position just after its record)
        self.queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self.counter = 0

    # -- the model --------------------------------------------------------
    def needed(self, pos: int, length: int) -> int:
        size = rf.rec_size(length)
        contig = self.cap - (pos % self.cap)
        return size if size <= contig else contig + size

    def fits(self, pos: int, length: int) -> bool:
        used = (pos - self.head) % M64
        return self.needed(pos, length) <= self.cap - used

    def payload(self, length: int) -> bytes:
        self.counter += 1
        return (self.counter.to_bytes(8, "little") * (length // 8 + 1))[:length]

    # -- rules --------------------------------------------------------------
    @rule(data=st.data())
    def write_one(self, data):
        length = data.draw(st.integers(0, self.maxp + 8))
        msg = self.payload(length)
        if length > self.maxp:
            try:
                self.prod.write(msg)
            except MessageTooLarge:
                return
            raise AssertionError("oversized record accepted")
        expect = self.fits(self.tail, length)
        rc = self.prod.write(msg)
        assert (rc >= 0) == expect
        if expect:
            self.tail = (self.tail + self.needed(self.tail, length)) % M64
            self.queue.append((msg, self.tail))

    @rule(data=st.data(), atomic=st.booleans())
    def write_batch(self, data, atomic):
        lengths = data.draw(st.lists(st.integers(0, self.maxp), min_size=1, max_size=12))
        msgs = [self.payload(n) for n in lengths]
        pos, fitting = self.tail, 0
        total = 0
        for n in lengths:
            total += self.needed(self.tail + total, n)
        for n in lengths:
            if not self.fits(pos, n):
                break
            pos = (pos + self.needed(pos, n)) % M64
            fitting += 1
        if atomic:
            if total > self.cap:
                try:
                    self.prod.write_records(
                        b"".join(msgs), array("I", lengths), None, 0, atomic=True
                    )
                except MessageTooLarge:
                    return
                raise AssertionError("impossible atomic batch accepted")
            expect = len(msgs) if fitting == len(msgs) else 0
            n, _wake = self.prod.write_records(
                b"".join(msgs), array("I", lengths), None, 0, atomic=True
            )
        else:
            expect = fitting
            n, _wake = self.prod.write_many(msgs)
        assert n == expect
        for i in range(n):
            self.tail = (self.tail + self.needed(self.tail, lengths[i])) % M64
            self.queue.append((msgs[i], self.tail))

    @precondition(lambda self: hasattr(self, "queue"))
    @rule(max_count=st.integers(1, 70))
    def read(self, max_count):
        got, flags, aux, _wake = self.cons.read(self.buf, max_count)
        expect = [self.queue.popleft() for _ in range(min(max_count, 64, len(self.queue)))]
        assert got == [msg for msg, _end in expect]
        assert flags is None and aux is None
        if expect:
            # The head stops just after the last record read: padding in front
            # of the next record is skipped only when that record is read.
            self.head = expect[-1][1]
        assert rf.get(self.region, "head") == self.head

    # -- invariants ---------------------------------------------------------
    @invariant()
    def positions_agree(self):
        if not hasattr(self, "queue"):
            return
        assert rf.get(self.region, "tail") == self.tail
        assert (rf.get(self.region, "tail_seq") - rf.get(self.region, "head_seq")) % M64 == len(
            self.queue
        )
        used = (self.tail - self.head) % M64
        assert used <= self.cap
        if not self.queue:
            assert self.cons.available() == used


RingModel.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestRingModel = RingModel.TestCase
