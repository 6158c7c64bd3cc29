"""secondorder: reproduce and extend the classic second-order optimisation results for neural networks.

The package is organised by concept (see README.md, "Architecture"): ``data`` (datasets), ``models``
(networks and initialisation), ``losses`` (matching loss / output-nonlinearity pairs), ``optim`` (one module
per method), ``train`` (the single trainer loop), ``run_record`` (the run-directory contract), ``cli``
(the ``train`` / ``sweep`` / ``report`` commands).
"""

__version__ = "0.1.0"
