"""The view-only tail (``engine/tail.py``, ``xcinspect tail``): new bytes in order, gaps
reported as gaps, wrap and corrupt indices, and -- against a running sim world -- that it
never consumes the ring (out_cons is moved only by the backend, and xenconsoled's own log
still has every byte), under ``--read-only`` too, with hostile bytes escaped."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time

import pytest
from hostile_corpus import CORPUS, bad_cli_bytes, framed

from xcinspect.core.ring import IDX, IDX_OFFSET, MASK32, OUT_SIZE, RingIO
from xcinspect.core.sanitize import sanitize
from xcinspect.engine.tail import ConsoleTail, RingTail, TailError, TailSample
from xcinspect.platform.xenstore import XsClient
from xcinspect.sim.evtchn import channel_name


# -- the arithmetic ---------------------------------------------------------------------------------
class Producer:
    """A guest writing a known stream into a 2048-byte ring; the indices start at ``base``."""

    def __init__(self, base: int = 0) -> None:
        self.ring = bytearray(OUT_SIZE)
        self.stream = bytearray()
        self.base = base
        self.cons = base  # a backend that drains everything at once (like xenconsoled)

    @property
    def prod(self) -> int:
        return (self.base + len(self.stream)) & MASK32

    def write(self, data: bytes) -> None:
        for b in data:
            self.ring[self.prod % OUT_SIZE] = b
            self.stream.append(b)
        self.cons = self.prod

    def sample(self) -> TailSample:
        return TailSample(self.cons, self.prod, bytes(self.ring), self.cons, self.prod)


def test_first_sample_shows_what_a_young_ring_holds_then_only_new_bytes():
    p = Producer()
    p.write(b"hello ")
    t = RingTail()
    c = t.feed(p.sample())
    assert (c.data, c.missed) == (b"hello ", 0)
    assert t.feed(p.sample()).data == b""
    p.write(b"world\n")
    c = t.feed(p.sample())
    assert (c.data, c.missed) == (b"world\n", 0)


def test_history_of_consumed_output_starts_at_a_whole_line():
    p = Producer()
    p.write(b"".join(b"line %04d\r\n" % i for i in range(400)))  # 4400 bytes: wrapped twice
    c = RingTail().feed(p.sample())
    assert c.missed == 0 and c.data.startswith(b"line ") and c.data.endswith(b"line 0399\r\n")
    assert bytes(p.stream).endswith(c.data) and len(c.data) > OUT_SIZE - 64 - 11


def test_new_only_skips_the_history():
    p = Producer()
    p.write(b"old stuff")
    t = RingTail(history=False)
    assert t.feed(p.sample()).data == b""
    p.write(b"new")
    assert t.feed(p.sample()).data == b"new"


def test_more_than_the_ring_between_two_samples_is_a_gap_not_invented_bytes():
    p = Producer()
    t = RingTail(guard=0)
    p.write(b"a" * 10)
    t.feed(p.sample())
    p.write(bytes(range(256)) * 12)  # 3072 bytes: the first 1024 are overwritten
    c = t.feed(p.sample())
    assert c.missed == 3072 - OUT_SIZE
    assert c.data == bytes(p.stream[-OUT_SIZE:])


def test_guard_bytes_at_the_old_end_count_as_missed():
    p = Producer()
    t = RingTail(guard=64)
    p.write(b"x")
    t.feed(p.sample())
    p.write(b"y" * OUT_SIZE)
    c = t.feed(p.sample())
    assert (c.missed, len(c.data)) == (64, OUT_SIZE - 64)


def test_bytes_the_guest_reused_during_the_copy_are_not_trusted():
    """The copy was taken at prod=100; by the second index read the guest had written 2000
    more: the slots of indices below 2100-2048 may hold new bytes."""
    p = Producer()
    p.write(b"A" * 100)
    t = RingTail(guard=0)
    t.seen = 0
    s = TailSample(100, 100, bytes(p.ring), 2100, 2100)
    c = t.feed(s)
    assert c.missed == 52 and c.data == b"A" * 48


def test_unread_bytes_are_trusted_whatever_the_guard():
    """No backend: all 2048 bytes are unread, none can be overwritten."""
    ring = bytes(range(256)) * 8
    t = RingTail(guard=64)
    c = t.feed(TailSample(5000, 5000 + OUT_SIZE, ring, 5000, 5000 + OUT_SIZE))
    assert c.missed == 0 and len(c.data) == OUT_SIZE


def test_indices_wrapping_at_2_32():
    p = Producer(base=MASK32 - 5)
    t = RingTail(guard=0)
    p.write(b"0123")
    t.feed(p.sample())
    p.write(b"456789")  # prod passes 2^32
    assert p.prod < 10
    c = t.feed(p.sample())
    assert (c.data, c.missed) == (b"456789", 0)


def test_corrupt_indices_are_reported_and_nothing_is_read():
    t = RingTail()
    c = t.feed(TailSample(0, 10000, b"\x00" * OUT_SIZE, 0, 10000))
    assert c.data == b"" and "corrupt out indices" in c.problem and "10000 bytes unread" in c.problem
    assert t.seen is None  # resumes once the indices make sense again


def test_indices_moving_backwards_resynchronise():
    p = Producer()
    p.write(b"z" * 500)
    t = RingTail()
    t.feed(p.sample())
    c = t.feed(TailSample(10, 20, bytes(p.ring), 10, 20))
    assert "moved backwards" in c.problem
    assert t.seen == 20


@pytest.mark.parametrize("seed", range(20))
def test_random_writers_and_samples_reconstruct_the_stream_with_honest_gaps(seed):
    """Whatever the write sizes and sampling times: every byte reported is the byte the
    guest wrote at that index, and reported + missed covers the stream exactly."""
    rnd = random.Random(seed)
    base = rnd.choice([0, MASK32 - 3000, 12345])
    p = Producer(base=base)
    # a ring that did not start at 0 holds older output the stream here does not know
    t = RingTail(guard=rnd.choice([0, 64]), history=base == 0)
    assert t.feed(p.sample()).data == b""  # the tail starts before the stream does
    got, pos = bytearray(), 0
    for _ in range(200):
        n = rnd.choice([0, 1, 7, 100, 900, 2047, 2048, 2049, 5000])
        p.write(bytes(rnd.randrange(256) for _ in range(n)))
        c = t.feed(p.sample())
        pos += c.missed
        assert bytes(p.stream[pos: pos + len(c.data)]) == c.data
        pos += len(c.data)
        got += c.data
    assert pos == len(p.stream)
    assert t.total + t.total_missed == len(p.stream)


# -- against a running world ------------------------------------------------------------------------
def xci(*args, timeout=60, **kw):
    return subprocess.run([sys.executable, "-m", "xcinspect", *args], capture_output=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from xcinspect.sim.handle import start_world

    w = start_world(str(tmp_path_factory.mktemp("tail-world")), scenario="demo", timeline=False)
    yield w
    w.stop()


def _booted(world, domid: int, timeout: float = 20.0) -> None:
    import json

    deadline = time.monotonic() + timeout
    while domid not in json.loads(world.control("status"))["booted"]:
        assert time.monotonic() < deadline, f"dom {domid} did not boot"
        time.sleep(0.05)


def out_indices(world, domid: int) -> tuple[int, int]:
    with world.platform().map_page(domid, None) as m:
        _, _, cons, prod = IDX.unpack_from(m.buf, IDX_OFFSET)
    return cons, prod


def guest_log(world, name: str) -> bytes:
    with open(os.path.join(world.dir, "logs", f"guest-{name}.log"), "rb") as f:
        return f.read()


TICK = re.compile(r"tick (\d+): ")


@pytest.mark.parametrize("read_only", [False, True], ids=["default", "read-only"])
def test_cli_tail_follows_a_serviced_guest_in_order_and_consumes_nothing(world, read_only):
    name = f"counter{int(read_only)}"
    d = int(world.control(f"create {name} consoled=1 tick=0.05"))
    _booted(world, d)
    time.sleep(0.5)
    args = ["--sim", world.dir] + (["--read-only"] if read_only else []) + ["tail", str(d), "--new", "-d", "0.1",
                                                                          "--timeout", "3"]
    r = xci(*args)
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "tail (read-only): may miss bytes" in err and "missed" not in err
    out = r.stdout.decode()
    ticks = [int(n) for n in TICK.findall(out)]
    assert len(ticks) >= 20, out[-500:]  # ~3 s of a line every 50 ms
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # in order, none lost
    # xenconsoled consumed every byte -- its log has them all, the tail's among them
    time.sleep(0.3)
    log = guest_log(world, name)
    assert out in sanitize(log)
    logged = [int(n) for n in TICK.findall(log.decode(errors="replace"))]
    assert logged == list(range(1, len(logged) + 1)) and logged[-1] >= ticks[-1]
    world.control(f"guest {d} set behaviour quiet")


def test_out_cons_is_never_moved_by_the_tail(world):
    """stuck-boot: nobody services it, the ring is full, the guest is blocked. The tail
    shows the 2048 bytes, and out_cons is exactly where it was."""
    d = world.domid("stuck-boot")
    before = out_indices(world, d)
    assert (before[1] - before[0]) & MASK32 == OUT_SIZE
    with world.platform().map_page(d, None) as m:
        ring_now = RingIO(m.buf).peek_out()[0]
    r = xci("--sim", world.dir, "--read-only", "tail", "stuck-boot", "--timeout", "1.5", "-d", "0.05")
    assert r.returncode == 0, r.stderr
    assert out_indices(world, d) == before
    assert r.stdout.decode() == sanitize(ring_now)
    assert world.platform().port_bound(d, world.domains[d]["port"]) is False


def test_slow_sampling_of_a_fast_guest_reports_missed_bytes(world):
    """Every byte the tail reports is the byte xenconsoled logged at that index; what it
    could not see is counted, not made up."""
    name = "flood"
    d = int(world.control(f"create {name} consoled=1 behaviour=chatty"))
    _booted(world, d)
    tail = ConsoleTail(world.platform(), d, history=False)
    tail.open()
    chunks = []
    try:
        for _ in range(6):
            time.sleep(0.5)
            chunks.append(tail.sample())
    finally:
        tail.close()
    world.control(f"guest {d} set behaviour quiet")
    assert sum(c.missed for c in chunks) > 0
    time.sleep(0.3)
    log = guest_log(world, name)
    for c in chunks:
        assert c.problem is None
        start = c.prod - len(c.data)
        assert log[start: c.prod] == c.data
    # and the CLI says so on stderr, one line per gap
    d2 = int(world.control("create flood2 consoled=1 behaviour=chatty"))
    _booted(world, d2)
    r = xci("--sim", world.dir, "--read-only", "tail", str(d2), "-d", "0.7", "--timeout", "2.5")
    world.control(f"guest {d2} set behaviour quiet")
    assert r.returncode == 0
    gaps = [ln for ln in r.stderr.decode().splitlines() if "missed" in ln]
    assert gaps and all(re.search(r"missed \d+ bytes", g) for g in gaps)
    # the pieces either side of a gap are on separate lines: no spliced line
    for line in r.stdout.decode().splitlines()[1:-1]:
        assert line.count("chatty: flood") <= 1, line


def test_hostile_bytes_are_escaped(world):
    d = int(world.control("create tailhx consoled=1 behaviour=quiet"))
    _booted(world, d)
    time.sleep(1.0)
    entries = [(i, h) for i, h in enumerate(CORPUS) if len(h.data) < 40][:20]
    payload = b"".join(framed(i, h)[0] for i, h in entries)
    assert len(payload) < OUT_SIZE - 64
    plat = world.platform()
    with plat.map_page(d, None, writable=True) as m:  # the test as a second producer
        assert RingIO(m.buf).write_out(payload) == len(payload)
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(b"!", channel_name(plat.world_id, d, world.domains[d]["port"], "backend"))
    except OSError:
        pass
    s.close()
    time.sleep(0.5)
    r = xci("--sim", world.dir, "--read-only", "tail", str(d), "--timeout", "0.5")
    assert r.returncode == 0
    assert bad_cli_bytes(r.stdout) == []
    for i, h in entries:
        marker = b"<@%02d|" % i
        assert marker in r.stdout, h.name
        for raw in h.raw:
            assert raw not in r.stdout, h.name


def test_bad_domid_no_console_and_a_closed_pipe(world):
    r = xci("--sim", world.dir, "tail", "4242")
    assert r.returncode == 2 and r.stderr.decode().strip() == "xcinspect: no domain 4242 in xenstore"
    r = xci("--sim", world.dir, "tail", "nosuchname")
    assert r.returncode == 2 and len(r.stderr.decode().strip().splitlines()) == 1
    xs = XsClient(world.xenstore_path)
    xs.write("/local/domain/77/name", "noconsole")
    xs.write("/local/domain/77/domid", "77")
    xs.close()
    r = xci("--sim", world.dir, "tail", "noconsole")
    assert r.returncode == 2, r.stderr
    err = r.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "domain 77 has no usable console" in err[0]
    with pytest.raises(TailError):
        ConsoleTail(world.platform(), 77).open()
    # a closed pipe ends it quietly
    p = subprocess.Popen([sys.executable, "-m", "xcinspect", "--sim", world.dir, "tail", "chatty", "-q", "-d", "0.05"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.read(100)
    p.stdout.close()
    rc = p.wait(20)
    assert rc == 0 and p.stderr.read() == b""


# Last in the file: a domid freed by destroy is reused by the next create, and the sim
# xenconsoled does not service a domid reused that quickly.
def test_the_tail_ends_when_the_domain_goes(world):
    d = int(world.control("create shortlived consoled=1 tick=0.2"))
    _booted(world, d)
    p = subprocess.Popen([sys.executable, "-m", "xcinspect", "--sim", world.dir, "tail", str(d)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    world.control(f"destroy {d}")
    rc = p.wait(20)
    assert rc == 0
    assert f"domain {d} is gone" in p.stderr.read().decode()
