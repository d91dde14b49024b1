"""One small adapter per provider. Each sends one rendered notification and raises `DeliveryError` (permanent or
retryable, with the provider's retry-after) when the provider refuses; `registry.providers_for` picks the primary
and fallback provider of a channel from the settings."""
