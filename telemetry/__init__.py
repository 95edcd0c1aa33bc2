"""What every part of the platform shares to be observed: traces (`tracing`), Prometheus metrics (`metrics`)
and structured logs (`logs`). Importable by trainers: nothing here needs the services' packages."""
