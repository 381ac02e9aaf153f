"""Monitoring jobs over the prediction log (drift, accuracy, freshness): see the monitoring issue."""
