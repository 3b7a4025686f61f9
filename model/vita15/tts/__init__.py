"""VITA-1.5 speech output: text normalisation, LLM2TTSCodecAR decoder, TiCodec, streaming, pipeline.

Submodules are imported explicitly (``vita15.tts.synthesize`` etc.) to keep this package light.
"""
