-- A placeholder: migration 0002 belongs to work landing beside this one (client
-- token revocation, per-client access). Numbers run without a gap, so it holds
-- the place on a branch without that work, and is replaced by the real 0002
-- when both are merged.
SELECT 1;
