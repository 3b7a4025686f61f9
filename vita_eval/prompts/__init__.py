"""Prompt presets: how a `Sample` becomes a `Request`, reproduced from a named reference.

Each preset is a function `build(sample, suite, args) -> Request` registered with
`@register("preset", NAME)` (see `vita_eval.registry`); the name is recorded in every
result, so two numbers made with different prompts can never be confused.
"""
