"""The Kopf operator for the StreamProcessor and Topic custom resources.

Only this package talks to the Kubernetes API. It never imports the edge or the processors:
it runs them as containers.
"""
