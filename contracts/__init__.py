"""Every message and subject of the platform: the single source of truth.

Services import models and subject names from here and nowhere else. Within a version (`v1`) models only
grow by optional fields; `tests/contracts/test_compatibility.py` enforces that against the checked-in schemas.
"""
