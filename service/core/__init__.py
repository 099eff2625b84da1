"""The transport-free core: use case, model catalog, provider protocol, errors.

It imports the generated schema and the standard library only, and knows no
provider: models name their provider, and the use case routes by that name.
"""

from .chat import ChatResult, ChatService, ChatStream
from .compat import Adjustment, CompatReport
from .models import ModelCatalog, ModelInfo
from .provider import ChatProvider, ProviderCall, UpstreamInfo

__all__ = [
    "Adjustment",
    "ChatProvider",
    "ChatResult",
    "ChatService",
    "ChatStream",
    "CompatReport",
    "ModelCatalog",
    "ModelInfo",
    "ProviderCall",
    "UpstreamInfo",
]
