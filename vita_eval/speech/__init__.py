"""Speech out: `vita-eval ask` and `latency` (the streaming answer path), and speech-out evaluation.

`ask` / `latency` drive `vita15.pipeline` (the model-side stages and timers); `transcribe`,
`quality` and `metrics` score what the model said; `suite` adds speech output to any suite of a
run, `report` shows text-out beside speech-out.
"""
