"""chatgate: Claude behind the OpenAI Chat Completions API, over gRPC and HTTP."""
