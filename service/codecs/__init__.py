"""Pure dialect codecs: a wire format's JSON <-> chatgate.v1 messages, both directions.

Surfaces (the HTTP edge) and providers (a future OpenAI-compatible upstream)
both import these; a codec does no I/O and knows no transport.
"""
