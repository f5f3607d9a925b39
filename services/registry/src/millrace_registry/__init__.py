"""registry: registered models, versions, aliases, audit log and site deployments."""
