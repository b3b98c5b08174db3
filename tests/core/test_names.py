"""How the user's functions are named in reports and errors."""

import numpy as np
import pytest

import backcheck
from backcheck.calls import function_name


def test_a_lambda_is_named_by_its_own_source_not_the_statements_after_it():
    f = lambda x: np.sum(x**2); g = np.cos  # noqa: E702, E731
    assert function_name(f) == "lambda x: np.sum(x**2)" and g is np.cos


@pytest.mark.parametrize(("value", "phrase"), [(3, "is an int"), ("f", "is a str"), (None, "is None")])
def test_a_function_that_is_not_one_is_named_with_its_kind(value, phrase):
    with pytest.raises(backcheck.BadInputError, match=phrase):
        backcheck.numerical_grad(value, np.ones(2))
