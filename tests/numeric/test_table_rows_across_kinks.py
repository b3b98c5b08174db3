"""A Richardson table whose first rows cross kinks a little off the point: a float32 two-layer ReLU network's loss
along one first-layer weight (tests/core/test_float32_relu_mlp_tables.py, 8 examples, seed 3, W1[0, 2] = 0.0656),
whose pre-activations cross 0 at moves of 0.054, 0.104 and 0.209 of that weight. Its central differences at
steps of 1 down to 1/16 average slopes beyond those kinks, and their changes grow (1.5x, 1.4x, 1.8x per halving)
where a smooth function's shrink fourfold; an order-8 entry from those rows was 15% off the derivative with an
estimate of 3% of it, and the check failed a right backward pass. A growing change of a symmetric stencil's
differences restarts the table's trust below it, as a jump does; the rows below the kinks find the derivative.

The values are recorded (the loss, computed in float32, rounds by the machine's own float32 exp and log): the
table's logic is tested on them, whatever machine runs the test."""

from __future__ import annotations

import numpy as np

from backcheck.numeric.richardson import MAX_ROWS, RefineOptions, refine
from backcheck.numeric.stencils import STENCILS

#: The loss at the point, and at each move of the weight the table takes: (value, the move float32 rounded it to).
PHI0 = 2.330315351486206
ALONG = {
    -1.0: (2.329421043395996, -0.9999999850988388),
    -0.5: (2.3298797607421875, -0.4999999850988388),
    -0.25: (2.3300962448120117, -0.25),
    -0.125: (2.3302054405212402, -0.125),
    -0.0625: (2.3302602767944336, -0.0625),
    -0.03125: (2.3302879333496094, -0.03125),
    -0.021875: (2.330296039581299, -0.02187500149011612),
    -0.015625: (2.330301523208618, -0.015625),
    -0.0078125: (2.330308437347412, -0.0078125),
    -0.00546875: (2.330310344696045, -0.005468748509883881),
    -0.00390625: (2.3303117752075195, -0.00390625),
    0.00390625: (2.3303186893463135, 0.00390625),
    0.00546875: (2.330320119857788, 0.005468748509883881),
    0.0078125: (2.330322265625, 0.0078125),
    0.015625: (2.330328941345215, 0.015625),
    0.021875: (2.3303346633911133, 0.02187500149011612),
    0.03125: (2.3303427696228027, 0.03125),
    0.0625: (2.330416679382324, 0.0625),
    0.125: (2.3308136463165283, 0.125),
    0.25: (2.331643581390381, 0.2500000149011612),
    0.5: (2.33343243598938, 0.5000000149011612),
    1.0: (2.337128162384033, 0.9999999552965164),
}

#: The derivative there, through the float64 network (float32 weights and inputs).
DERIVATIVE = 8.81061890e-4
#: What the loss's float32 rounding is measured at along this weight (three deviations), and float32's epsilon.
NOISE, EPS = 3.978e-7, float(np.finfo(np.float32).eps)


def along(_element: int, steps: list[float]) -> tuple[np.ndarray, np.ndarray]:
    missing = [s for s in steps if float(s) not in ALONG]
    assert not missing, f"the table asked for moves not recorded: {missing}"
    values = [ALONG[float(s)] for s in steps]
    return np.array([v for v, _ in values]), np.array([d for _, d in values])


def test_a_table_whose_first_rows_cross_kinks_bounds_its_error() -> None:
    out = refine(
        along,
        np.array([1.0]),
        np.array([0.0656]),
        EPS,
        stencil=STENCILS["central"],
        noise=np.array([NOISE]),
        phi0=np.array([PHI0]),
        options=RefineOptions(2.2e-6, MAX_ROWS, np.inf, None),
    )
    value, error = float(out.value[0]), float(out.error[0])
    assert abs(value - DERIVATIVE) <= error, (value, error)
    # from rows below the nearest kink (0.054): the rows at 1/16 and above cross it
    assert float(out.step[0]) * 2 ** (int(out.order[0]) // 2 - 1) < 0.054, (out.step, out.order)
