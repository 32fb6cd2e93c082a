"""Every socket type and both link directions, on every scheme.

The promises themselves are in :mod:`helpers.conformance`; each class
here names a link (which types, which side binds, which options), and
each test runs once per scheme (``shm``, ``inproc``).  A later transport
adds its scheme to ``helpers.conformance.SCHEMES``; a later socket type
adds its links here.
"""

from __future__ import annotations

from helpers.conformance import Conformance, Link, Pipelined, link_factory

from shmsock import PAIR, PULL, PUSH, REP, REQ


class ReqRepLink(Link):
    async def after_exchange(self) -> None:
        await self.rx.send(b"ack")
        assert await self.tx.recv() == b"ack"


class TestPushBinds(Pipelined):
    link = staticmethod(link_factory(PUSH, PULL, tx_binds=True))


class TestPullBinds(Pipelined):
    link = staticmethod(link_factory(PUSH, PULL, tx_binds=False))


class TestPairBinderSends(Pipelined):
    link = staticmethod(link_factory(PAIR, PAIR, tx_binds=True))


class TestPairConnectorSends(Pipelined):
    link = staticmethod(link_factory(PAIR, PAIR, tx_binds=False))


class TestPairSpinning(Pipelined):
    """With spin_us, a receive polls before it sleeps: the same promises hold."""

    link = staticmethod(link_factory(PAIR, PAIR, tx_binds=False, spin_us=200))


class TestRepBinds(Conformance):
    link = staticmethod(link_factory(REQ, REP, tx_binds=False, link_cls=ReqRepLink))


class TestReqBinds(Conformance):
    link = staticmethod(link_factory(REQ, REP, tx_binds=True, link_cls=ReqRepLink))


class TestReqRepSpinning(Conformance):
    link = staticmethod(link_factory(REQ, REP, tx_binds=False, link_cls=ReqRepLink, spin_us=200))
