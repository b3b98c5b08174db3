"""An executor of any kind gives the serial report: threads never share a perturbed point."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

import backcheck


def loss(p):
    return float(np.sum(np.sin(p["W"]) * p["W"]) + np.sum(p["b"] ** 3))


def grad(p, wrong=1.0):
    g = {"W": np.cos(p["W"]) * p["W"] + np.sin(p["W"]), "b": 3 * p["b"] ** 2}
    g["W"].reshape(-1)[5] *= wrong
    return g


def test_threads_give_the_serial_report_and_find_a_small_error():
    rng = np.random.default_rng(0)
    p = {"W": rng.normal(size=(6, 5)), "b": rng.normal(size=4)}
    before = {k: v.copy() for k, v in p.items()}
    for wrong in (1.0, 1.001):
        claimed = grad(p, wrong)
        serial = backcheck.check(loss, p, claimed)
        with ThreadPoolExecutor(4) as pool:
            threaded = backcheck.check(loss, p, claimed, executor=pool)
        assert threaded.status == serial.status == ("pass" if wrong == 1.0 else "fail")
        assert [lf.to_dict()["counts"] for lf in threaded.leaves] == [lf.to_dict()["counts"] for lf in serial.leaves]
        np.testing.assert_array_equal(threaded.numeric["W"], serial.numeric["W"])
    for k in p:
        np.testing.assert_array_equal(p[k], before[k])
