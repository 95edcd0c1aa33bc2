"""The scheduler: the only writer of job state.

`core/` is the pure state machine; `service.py` applies inputs (lock, decide, publish, commit);
`handlers.py` and `consumer.py` are the NATS transport; `ticker.py` is the clock; `replay.py` re-derives a
job's events from its recorded inputs. Entry point: `services.scheduler.app:main`.
"""
