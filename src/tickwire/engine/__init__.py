"""The bus and the store behind the gateway."""
