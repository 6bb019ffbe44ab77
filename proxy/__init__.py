"""The aiohttp reverse proxy (PEP) that enforces decisions."""
