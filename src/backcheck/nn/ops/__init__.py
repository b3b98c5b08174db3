"""The primitive ops of :mod:`backcheck.nn`, one module per family.

Each op is a :class:`~backcheck.nn.tensor.Function` subclass whose forward and backward sit side by
side, plus a public function that applies it.  :mod:`backcheck.nn.functional` re-exports them.
"""
