"""The gateway: one OpenAI endpoint for local models and hosted providers (see app.py).

Importing this package imports neither Ray nor vLLM; `config` is pure pydantic, so the operator
builds gateway configs from it.
"""
