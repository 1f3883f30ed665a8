"""Trace-driven autoscaling simulator: the serving layer's queue-depth policy against baselines.

Replays a request trace (TIMESTAMP, ContextTokens, GeneratedTokens) against a fleet of simulated
vLLM replicas whose speed comes from a calibration file, under one scaler at a time, and reports
queue wait, time to first token, SLO attainment, replica-seconds and scale-direction changes.
Our scaler is the same pure `decide` that runs inside Ray Serve
(`modeldeploy_serving.autoscaling`). Run `python -m bench.autoscale --help`.
"""
