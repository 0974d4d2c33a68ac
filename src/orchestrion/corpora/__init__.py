"""Built-in corpora made offline from installed packages."""
