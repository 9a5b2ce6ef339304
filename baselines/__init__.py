"""Baseline models, each registered through the public :func:`estagbench.register_model`.

Every module in this package is imported by the registry on first use.
"""
