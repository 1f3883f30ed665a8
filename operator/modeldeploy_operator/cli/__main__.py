"""`python -m modeldeploy_operator.cli`: the `modeldeploy` command, as `make crd` runs it."""

from . import main

if __name__ == "__main__":
    raise SystemExit(main())
