"""Training jobs: point-in-time training sets from Feast, XGBoost, the BentoML model store."""
