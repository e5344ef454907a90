-- The active coordinator's lease (issue #20): several coordinators may point
-- at one database; the one holding the lease is active, the others wait.
--
-- The fencing token lives in a row of its own, changed only when a
-- coordinator takes the lease over. Every write transaction of the active
-- coordinator first locks this row (FOR SHARE) and checks the token is still
-- its own, so a takeover waits for the transactions in flight and no
-- transaction of a former holder commits after it.
CREATE TABLE coordinator_lease (
    id     SMALLINT PRIMARY KEY CHECK (id = 1),
    token  BIGINT NOT NULL CHECK (token >= 0),
    holder TEXT NOT NULL
);

-- The lease's expiry, renewed by its holder. Kept apart from the token so
-- that a renewal never conflicts with the token checks of write transactions.
CREATE TABLE coordinator_lease_expiry (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    token      BIGINT NOT NULL CHECK (token >= 0),
    expires_at TIMESTAMPTZ NOT NULL
);

INSERT INTO coordinator_lease (id, token, holder) VALUES (1, 0, '');
INSERT INTO coordinator_lease_expiry (id, token, expires_at) VALUES (1, 0, '-infinity');
