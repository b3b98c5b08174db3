"""Scratch buffers: lent, never shared, kept within a bound."""

import threading

import numpy as np

import backcheck
from backcheck import scratch


def test_buffers_lent_at_once_are_distinct_and_reused_after():
    n = scratch.LEND_FROM
    scratch.release()
    with scratch.lend(n) as a, scratch.lend(n) as b:
        assert a.size == b.size == n and not np.shares_memory(a, b)
        first = {a.ctypes.data, b.ctypes.data}
    with scratch.lend(n) as c:
        assert c.ctypes.data in first  # kept for the next user


def test_a_smaller_request_gets_a_view_of_a_kept_buffer():
    scratch.release()
    with scratch.lend(2 * scratch.LEND_FROM) as big:
        where = big.ctypes.data
    with scratch.lend(scratch.LEND_FROM) as small:
        assert small.size == scratch.LEND_FROM and small.ctypes.data == where


def test_small_requests_are_plain_arrays_and_nothing_beyond_the_bound_is_kept():
    scratch.release()
    with scratch.lend(10) as a:
        assert a.size == 10
    assert not scratch._kept
    n = scratch.KEEP_BYTES // 8 // 2 + 1  # two of these exceed the bound
    with scratch.lend(n), scratch.lend(n):
        pass
    assert sum(b.nbytes for b in scratch._kept) <= scratch.KEEP_BYTES
    scratch.release()
    assert not scratch._kept


def test_threads_never_share_a_buffer():
    scratch.release()
    n, seen, errors = scratch.LEND_FROM, [], []
    barrier = threading.Barrier(4)

    def work(k):
        with scratch.lend(n) as buf:
            buf.fill(k)
            barrier.wait()
            if not np.all(buf == k):
                errors.append(k)
            seen.append(buf.ctypes.data)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(seen)) == 4


def test_a_check_inside_a_checked_function_uses_its_own_buffers():
    n = 2 * scratch.LEND_FROM  # large enough to borrow scratch buffers, directions and displacements
    rng = np.random.default_rng(0)
    c, y = rng.standard_normal(n), rng.standard_normal(n)
    inner = []

    def f(x):
        if not inner:  # once, in the middle of the outer check's first direction
            inner.append(backcheck.check(lambda z: float(np.sum(z**2)), y, lambda z: 2 * z, strategy="projected"))
        return float(np.sum(np.sin(x) * c))

    x = rng.standard_normal(n)
    report = backcheck.check(f, x, lambda x: np.cos(x) * c, strategy="projected")
    assert report.status == "pass" and inner[0].status == "pass"
    inner.clear()
    wrong = backcheck.check(f, x, lambda x: np.cos(x) * c * (1 + 1e-4), strategy="projected")
    assert wrong.status == "fail" and inner[0].status == "pass"


def test_evicting_among_buffers_of_other_sizes_never_compares_them():
    # a kept buffer was evicted with list.remove, which compares with ==: against kept buffers of another size
    # before it, numpy's broadcast raised, and every later large check of the process failed with it
    scratch.release()
    unit = scratch.LEND_FROM
    with scratch.lend(unit), scratch.lend(2 * unit):
        pass
    big = scratch.KEEP_BYTES // 8  # with the two kept, beyond the bound: the smallest goes
    with scratch.lend(big):
        pass
    assert sum(b.nbytes for b in scratch._kept) <= scratch.KEEP_BYTES
    with scratch.lend(unit) as again:  # (and the module keeps working)
        assert again.size == unit
    scratch.release()
