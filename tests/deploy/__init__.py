"""Deployment files and documents: Dockerfile, Compose, Helm, packaging, the quick start, READMEs and docs."""
