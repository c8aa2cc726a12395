-- authentik's database is POSTGRES_DB; pma-sso's job store gets its own.
CREATE DATABASE pma_sso;
