"""Run ipass-budget locally with no AWS account and no Docker: moto server, the sandbox, the handler."""
