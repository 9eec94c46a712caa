-- Console users: free-form attributes as JSON text. Agents keep their skills here as
-- {"skills": {"sales": 4, "billing": 2}} (proficiency 1..=5), read by the ACD configuration.
ALTER TABLE users ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
