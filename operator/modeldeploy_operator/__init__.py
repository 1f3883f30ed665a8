"""modeldeploy operator: the ModelDeployment API, its CRD and the CLI."""
