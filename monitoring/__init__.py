"""Monitoring jobs over the prediction log (drift, accuracy, freshness): the monitoring issue."""
