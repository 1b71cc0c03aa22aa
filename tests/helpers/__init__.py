"""Small real components shared by the tests (spawners, servers)."""
