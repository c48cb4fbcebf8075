"""armsim: an offline Azure (Entra ID + ARM over HTTPS) for tests, demos and benchmarks.

See README.md in this directory. Run with ``PYTHONPATH=tools python -m armsim serve --seed FILE``.
"""

__version__ = "1.0.0"
