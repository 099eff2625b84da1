"""Claude on Google Vertex AI: Anthropic's wire (service/providers/anthropic) on Vertex's endpoints and
OAuth tokens. ``platform`` and ``tokens`` need the `vertex` extra (google-auth) and are imported only
when a Vertex upstream is configured; ``models`` needs nothing."""
