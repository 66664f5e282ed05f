"""The provider SDK: negotiate and invoke endpoints for any provider (spec sections 8, 9, 15).

``create_provider_app(config, policy=..., ledger=..., executor=...)`` returns an
aiohttp application implementing the provider HTTP binding of spec section 15;
a provider supplies the three backend objects of :mod:`cid.provider.backend`.
"""
