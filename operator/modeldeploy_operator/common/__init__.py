"""Small pure helpers that every layer shares.

- `names`: names, labels, annotations and ports of the objects a ModelDeployment owns;
- `hashing`: the canonical hash of a desired object, stamped on it to detect change;
- `quantities`: Kubernetes quantity arithmetic (Ray wants whole CPU counts);
- `validation`: reading a ModelDeployment document into the API models, one line per problem.

They import only the API models and each other, never a builder, a decision or the edge (nor
kopf, a Kubernetes or an HTTP client, checked by `make lint`); every other part of the operator
may import them.
"""
