"""Claude in Amazon Bedrock: Anthropic's wire (service/providers/anthropic) on Bedrock's endpoints,
credentials and framing. ``platform`` and ``signing`` need the `bedrock` extra (botocore) and are
imported only when a Bedrock upstream is configured; ``models`` needs nothing."""
