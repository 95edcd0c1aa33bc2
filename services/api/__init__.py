"""The user-facing API: REST for datasets and jobs, Server-Sent Events for job events.

Run with `services.api.app:main` (environment only: `VTP_API_HOST`, `VTP_API_PORT`, `NATS_URL`,
`DATABASE_URL`, ...) after `services.common.db.upgrade("api", DATABASE_URL)`.
Tests build the app with `create_app(settings)`.
"""
