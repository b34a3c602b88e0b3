"""Inference engines behind the serving gateway, with no Django import.

``serving.runtime.server`` is the built-in engine: one process per base model,
transformers + peft, adapters loaded after sha256 verification, evicted
least-recently-used under a memory budget, concurrent requests batched into
shared forward passes, spoken to over the OpenAI protocol like vLLM.
"""
