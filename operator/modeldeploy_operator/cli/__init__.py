"""The `modeldeploy` command line (the console script is `modeldeploy_operator.cli:main`).

- `commands`: the parser, `crd`, `validate` and the dispatch to `operator` (edge/operator_main);
- `model`: `digest DIR` and the fit check `validate` prints;
- `serve`: `serve -f FILE` and `dev make-tiny-model DIR` (the serving layer, imported when run).

The outermost layer: it may import every other part of the operator, and no other part imports
it (for `api`, `common`, `builders` and `decide` checked by `make lint`).
`python -m modeldeploy_operator.cli` runs it too (cli/__main__.py).
"""

from .commands import main

__all__ = ["main"]
