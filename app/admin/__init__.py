"""The admin service: keys, users, teams, stored deployments and the audit log."""
