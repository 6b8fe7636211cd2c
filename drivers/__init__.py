"""Device drivers behind one `Stimulator` interface (see drivers.base)."""
