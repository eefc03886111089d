"""tempolab: the controller side of Tempo lab (local lab, deployment, runner, analysis).

Runs on the controller only; nodes never import it.
"""

__version__ = "0.1.0"
