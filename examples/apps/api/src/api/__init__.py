"""Sample app "api"."""
