"""Inference engines a worker runs itself (a local tier): one Protocol, ``Engine``, with a
CPU implementation (transformers' batched ``generate``) and a GPU one (vLLM in-process)."""
