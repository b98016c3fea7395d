"""Tests of manifests/: renders, drift, models, and a real API server's verdict on them."""
