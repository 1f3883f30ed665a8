"""modeldeploy serving: Ray Serve replicas hosting vLLM's own OpenAI server."""
