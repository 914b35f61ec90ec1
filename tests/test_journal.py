"""The drain log knows where it stopped: every byte exactly once, whatever the crash point."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from xcinspect.core import ring
from xcinspect.engine.journal import Journal


def drain_step(io, journal, crash_after_append=False, max_bytes=None):
    data, new_cons = io.peek_out(max_bytes)
    if not data:
        return False
    journal.append(data)
    if crash_after_append:
        return True
    io.commit_out(new_cons)
    return True


def start_backend(path, io):
    """What the service does on start: resume from the log's end when the ring allows."""
    j = Journal(path, sync=False)
    _, _, cons, prod = ring.IDX.unpack_from(io.buf, ring.IDX_OFFSET)
    resume = j.resume_point(cons, prod)
    if resume != cons:
        io.commit_out(resume)
    return j


@given(seed=st.integers(0, 2**31), start=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_crash_between_append_and_commit_loses_and_repeats_nothing(tmp_path_factory, seed, start):
    rng = random.Random(seed)
    path = str(tmp_path_factory.mktemp("j") / "console.log")
    page = ring.blank_page(out_cons=start, out_prod=start)
    io = ring.RingIO(page)
    written = bytearray()
    j = start_backend(path, io)
    for _ in range(rng.randint(5, 40)):
        chunk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 900)))
        n = io.write_out(chunk)
        written += chunk[:n]
        crash = rng.random() < 0.3
        drain_step(io, j, crash_after_append=crash, max_bytes=rng.choice([None, 100, 777]))
        if crash:  # killed between the fdatasync and out_cons moving: restart
            j.close()
            j = start_backend(path, io)
    while drain_step(io, j):
        pass
    j.close()
    with open(path, "rb") as f:
        assert f.read() == bytes(written)


def test_gap_starts_a_new_segment(tmp_path):
    path = str(tmp_path / "console.log")
    page = ring.blank_page()
    io = ring.RingIO(page)
    j = start_backend(path, io)
    io.write_out(b"hello ")
    drain_step(io, j)
    j.close()
    # someone else drains while we are away
    io.write_out(b"LOST")
    _, cons = io.peek_out()
    io.commit_out(cons)
    io.write_out(b"world")
    j = start_backend(path, io)
    drain_step(io, j)
    j.close()
    assert open(path, "rb").read() == b"hello world"
    idx = open(path + ".idx").read().splitlines()
    assert len(idx) == 2 and '"gap"' in idx[1]


def test_torn_index_line_is_ignored(tmp_path):
    path = str(tmp_path / "console.log")
    page = ring.blank_page()
    io = ring.RingIO(page)
    j = start_backend(path, io)
    io.write_out(b"abc")
    drain_step(io, j, crash_after_append=True)
    j.close()
    with open(path + ".idx", "a") as f:
        f.write('{"offset": 3, "ind')  # torn write of a later segment record
    j = start_backend(path, io)
    assert j.end_index == 3
    while drain_step(io, j):
        pass
    assert open(path, "rb").read() == b"abc"
