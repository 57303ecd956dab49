"""Probes: what a policy costs, measured.

``size`` (parameters, nonzeros, scales, FLOPs and tensor bytes of a network; its theoretical
bytes), ``cost`` (multiply-accumulates and bytes of weights read per decision, as our layers
compute: the same on every machine), ``latency`` (batch-1 decisions in eager PyTorch and ONNX
Runtime), ``policy_time`` (the policy's time per decision over a reference policy's, interleaved
A/B runs in a fresh pinned process), ``resources`` (pinning to one core; resident memory of an
isolated inference process), ``regression`` (recorded policy outputs and returns that the portable
regression tests compare). Returns and their evaluation costs come from the core,
:mod:`rlcomp.rollout`.
"""
