"""Several replicas on one Redis or a Redis Cluster: fan-out, a shared store, failover, the event stream."""
