"""Probes: what a policy costs, measured.

``size`` (parameters, nonzeros, scales, FLOPs and tensor bytes of a network; its theoretical
bytes), ``latency`` (batch-1 decisions in eager PyTorch and ONNX Runtime), ``resources`` (pinning
to one core; resident memory of an isolated inference process), ``regression`` (recorded policy
outputs and returns that the portable regression tests compare). Returns and their evaluation
costs come from the core, :mod:`rlcomp.rollout`.
"""
