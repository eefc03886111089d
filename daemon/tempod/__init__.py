"""tempod: the Tempo lab node daemon (Berkeley synchronization, Gusella-Zatti election).

This package must import nothing outside the Python standard library: nodes install
the project's wheel with ``--no-deps`` and run it with the system interpreter.
"""

__version__ = "0.1.0"
