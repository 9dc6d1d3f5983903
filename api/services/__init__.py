"""The service's domain layer: region cache, coverage indexes, scenarios, jobs. Routes stay thin."""
