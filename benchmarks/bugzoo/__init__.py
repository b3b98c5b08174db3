"""The bug zoo benchmark: verdict quality of backcheck and its peers on every case of backcheck.zoo.

``cases`` builds the cases (each layer's correct backward at ordinary points and at kinks, and every wrong
backward), ``peers`` wraps each checker (backcheck, torch gradcheck slow and fast, jax check_grads, scipy
check_grad, the CS231n elementwise check) behind one call, ``run`` runs them, counts and writes the results.
Run ``python benchmarks/bugzoo/run.py --help``.
"""
