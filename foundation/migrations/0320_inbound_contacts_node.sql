-- The node carrying a contact's call: at its next start a node closes only its own open contacts
-- as interrupted (nodes sharing PostgreSQL must not close each other's live contacts). NULL: a
-- record written before this column, or by a tool; closed by any node's start.
ALTER TABLE inbound_contacts ADD COLUMN node TEXT;
CREATE INDEX inbound_contacts_node_open ON inbound_contacts (node, ended_at);
