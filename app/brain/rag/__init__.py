"""Answers: packing retrieved chunks into a prompt that fits the LLM's context, the LLM client, citations."""
