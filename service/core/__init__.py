"""The transport-free core: use case, model catalog, provider protocol, errors.

It imports the generated schema and the standard library only, and knows no
provider: models name their provider, and the use case routes by that name.
"""

from .admission import Admission
from .chat import ChatResult, ChatService, RelayResult
from .compat import Adjustment, CompatReport
from .models import ModelCatalog, ModelInfo
from .pipeline import Limits
from .provider import ChatProvider, NativeProvider, NativeRequest, ProviderCall, UpstreamInfo
from .retry import RetryPolicy
from .streams import ChatStream, RelayStream

__all__ = [
    "Adjustment",
    "Admission",
    "ChatProvider",
    "ChatResult",
    "ChatService",
    "ChatStream",
    "CompatReport",
    "Limits",
    "ModelCatalog",
    "ModelInfo",
    "NativeProvider",
    "NativeRequest",
    "ProviderCall",
    "RelayResult",
    "RelayStream",
    "RetryPolicy",
    "UpstreamInfo",
]
