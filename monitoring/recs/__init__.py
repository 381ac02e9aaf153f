"""The recommendation scenario's monitoring: ranking quality on delayed clicks, drift."""
