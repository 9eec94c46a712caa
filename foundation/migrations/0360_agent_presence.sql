-- Agents across nodes (inbound::presence). Nodes sharing PostgreSQL each mirror their logged-in
-- agents here, so a pacer on any node counts every node's agents and can hand an answered call to
-- an agent whose audio leg is on another node (inbound::runtime::handoff).

-- One row per running node: where its SIP listener is reached, and a heartbeat. A node whose
-- heartbeat is older than the presence TTL is dead: its agents are ignored, then deleted.
CREATE TABLE cluster_nodes (
    node         TEXT   NOT NULL PRIMARY KEY,
    sip_addr     TEXT   NOT NULL,                   -- host:port of its SIP listener (UDP)
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- Logged-in agents by node (an agent is on one node at a time: its newest login wins).
CREATE TABLE agent_presence (
    agent        TEXT   NOT NULL PRIMARY KEY,
    node         TEXT   NOT NULL,
    state        TEXT   NOT NULL,                   -- ACD state: available, on_contact, ...
    ready        SMALLINT NOT NULL,                 -- 1: available with its audio leg up / reachable
    queues       TEXT   NOT NULL,                   -- JSON array of the queues its profile serves
    endpoint     TEXT   NOT NULL,                   -- nailed_up | ring_per_offer
    since_ms     BIGINT NOT NULL,                   -- when the state last changed
    updated_at   BIGINT NOT NULL
);
CREATE INDEX agent_presence_node ON agent_presence (node);

-- Calls handed from the node that placed them to the node carrying the agent's leg. Written by
-- the sending node before its INVITE (the id travels in the INVITE and the receiving node only
-- accepts a handoff it finds here, addressed to it, still open); every row ends with an outcome.
CREATE TABLE agent_handoffs (
    id          TEXT   NOT NULL PRIMARY KEY,
    from_node   TEXT   NOT NULL,
    to_node     TEXT   NOT NULL,
    queue       TEXT   NOT NULL,
    agent_hint  TEXT   NOT NULL,                    -- the agent presence showed ready
    agent       TEXT,                               -- the agent who took it
    contact_id  TEXT   NOT NULL,                    -- the sending node's contact / call ref
    attributes  TEXT   NOT NULL,                    -- JSON: the lead card for the desktop
    created_at  BIGINT NOT NULL,
    taken_at    BIGINT,                             -- the receiving node accepted it
    ended_at    BIGINT,
    outcome     TEXT                                -- connected | no_agent | refused | failed | interrupted
);
CREATE INDEX agent_handoffs_open ON agent_handoffs (from_node, ended_at);
